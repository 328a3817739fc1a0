/**
 * A loopback stand-in for GitHub Actions' OIDC token issuer: serves the discovery document and
 * the key set as token.actions.githubusercontent.com does, and mints tokens with its RS256 key
 * and the claims of a GitHub Actions job (or deliberately wrong ones, for hostile-input tests).
 */
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from "jose";

export interface TestIssuerOptions {
  /** Path below the host, as GHES serves its issuer at https://HOST/_services/token. */
  basePath?: string;
  /** Let the key set fail (the connection is dropped), as an unreachable issuer would. */
  jwksUnreachable?: boolean;
}

export interface JobClaims {
  repository?: string;
  runId?: number;
  runAttempt?: number;
}

export interface MintOptions {
  audience?: string;
  issuer?: string;
  /** Seconds from now; negative for an expired token. */
  expiresIn?: number;
  /** Seconds from now of `nbf` and `iat`. */
  notBefore?: number;
  /** Claims to add or replace (undefined removes one). */
  claims?: Record<string, unknown>;
  /** Sign with this key instead of the issuer's (keeps the issuer's key id). */
  key?: CryptoKey;
  kid?: string;
}

export class TestIssuer {
  /** Requests served, by path. */
  readonly requests: string[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
    readonly kid: string,
    private readonly privateKey: CryptoKey,
    readonly publicKeyPem: string,
  ) {}

  static async start(options: TestIssuerOptions = {}): Promise<TestIssuer> {
    const { privateKey, publicKey } = await generateKeyPair("RS256");
    const jwk = { ...(await exportJWK(publicKey)), kid: "test-key-1", alg: "RS256", use: "sig" };
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("issuer did not get a TCP port");
    const url = `http://127.0.0.1:${address.port}${options.basePath ?? ""}`;
    const issuer = new TestIssuer(server, url, jwk.kid, privateKey, await exportSPKI(publicKey));
    server.on("request", (req, res) => {
      const path = new URL(req.url ?? "/", url).pathname;
      issuer.requests.push(path);
      const json = (status: number, body: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      if (path === `${options.basePath ?? ""}/.well-known/openid-configuration`) {
        // The fields GitHub's issuer publishes that a verifier reads.
        return json(200, {
          issuer: url,
          jwks_uri: `${url}/.well-known/jwks`,
          subject_types_supported: ["public", "pairwise"],
          response_types_supported: ["id_token"],
          claims_supported: ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository", "repository_id", "run_id", "run_attempt", "workflow_ref"],
          id_token_signing_alg_values_supported: ["RS256"],
          scopes_supported: ["openid"],
        });
      }
      if (path === `${options.basePath ?? ""}/.well-known/jwks`) {
        if (options.jwksUnreachable) return req.socket.destroy();
        return json(200, { keys: [jwk] });
      }
      json(404, { message: "Not Found" });
    });
    return issuer;
  }

  /** A token as GitHub Actions mints it for a job with `permissions: id-token: write`. */
  async mint(job: JobClaims, options: MintOptions = {}): Promise<string> {
    const repository = job.repository ?? "microsoft/netperf";
    const now = Math.floor(Date.now() / 1000);
    const notBefore = now + (options.notBefore ?? 0);
    const payload: JWTPayload = {
      jti: randomUUID(),
      sub: `repo:${repository}:ref:refs/heads/main`,
      ref: "refs/heads/main",
      sha: "8d5f3c2a9b1e4f6a7c0d2e3f4a5b6c7d8e9f0a1b",
      repository,
      repository_owner: repository.split("/")[0],
      repository_owner_id: "6154722",
      repository_id: "273418914",
      repository_visibility: "public",
      run_id: String(job.runId ?? 1000),
      run_number: "7",
      run_attempt: String(job.runAttempt ?? 1),
      runner_environment: "github-hosted",
      actor: "lab-admin",
      workflow: "perf",
      workflow_ref: `${repository}/.github/workflows/perf.yml@refs/heads/main`,
      event_name: "push",
      ...options.claims,
    };
    for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
    return new SignJWT(payload)
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: options.kid ?? this.kid })
      .setIssuer(options.issuer ?? this.url)
      .setAudience(options.audience ?? "lab-reset-test")
      .setIssuedAt(notBefore)
      .setNotBefore(notBefore)
      .setExpirationTime(now + (options.expiresIn ?? 300))
      .sign(options.key ?? this.privateKey);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve, reject) => this.server.close((error) => (error ? reject(error) : resolve())));
  }
}

/** base64url of a JSON value, to hand-craft tokens jose refuses to sign (alg "none"). */
export const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
