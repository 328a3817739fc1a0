/**
 * Who is calling job-completed: a GitHub Actions job proves it with an OIDC token (a JWT that
 * the issuer signs with RS256). The token names the repository and the run, so a caller can
 * only report its own run, and only repositories on the allow-list may report at all.
 */
import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from "jose";
import { z } from "zod";
import { REPOSITORY_PATTERN } from "../settings.js";

export interface OidcVerifierOptions {
  /** e.g. https://token.actions.githubusercontent.com (GHES: https://HOST/_services/token), no trailing slash. */
  issuer: string;
  audience: string;
  /** `owner/repo` names whose runs may call; compared case-insensitively. */
  allowedRepositories: string[];
  /** How far the caller's and our clocks may disagree. */
  clockToleranceSeconds?: number;
  /** Time limit of each fetch of the discovery document and the keys. */
  fetchTimeoutMs?: number;
}

/** The verified caller: a job of run `runId`, attempt `runAttempt`, of `repository`. */
export interface ActionsCaller {
  repository: string;
  runId: number;
  runAttempt: number;
  workflowRef: string | null;
}

/** The call is refused: 401 (no valid token), 403 (a valid token that may not do this) or 503 (we could not check). */
export class CallerRejectedError extends Error {
  constructor(
    readonly status: 401 | 403 | 503,
    message: string,
  ) {
    super(message);
    this.name = "CallerRejectedError";
  }
}

const DiscoverySchema = z.object({ issuer: z.string(), jwks_uri: z.url({ protocol: /^https?$/ }) });

const decimal = z.union([z.string().regex(/^[1-9]\d*$/), z.number().int().positive()]).transform(Number);

/** The claims we rely on; GitHub sends run ids as decimal strings. */
const ActionsClaimsSchema = z.object({
  repository: z.string().regex(REPOSITORY_PATTERN),
  run_id: decimal,
  run_attempt: decimal,
  workflow_ref: z.string().optional(),
});

const DEFAULT_CLOCK_TOLERANCE_SECONDS = 60;
const BEARER = /^Bearer\s+([A-Za-z0-9_.~+/=-]+)$/i;

export class OidcVerifier {
  private keys: Promise<JWTVerifyGetKey> | undefined;
  private readonly allowed: Set<string>;

  constructor(private readonly options: OidcVerifierOptions) {
    this.allowed = new Set(options.allowedRepositories.map((r) => r.toLowerCase()));
  }

  /** The caller behind an `Authorization: Bearer <token>` header, or a CallerRejectedError. */
  async verify(authorization: string | undefined): Promise<ActionsCaller> {
    const token = BEARER.exec(authorization?.trim() ?? "")?.[1];
    if (token === undefined) {
      throw new CallerRejectedError(401, "Send the job's GitHub Actions OIDC token as `Authorization: Bearer <token>` (the job needs `permissions: id-token: write`).");
    }
    const getKey = await this.issuerKeys();
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        issuer: this.options.issuer,
        audience: this.options.audience,
        // Pinned: never `none`, never an HMAC keyed with a public key.
        algorithms: ["RS256"],
        clockTolerance: this.options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ["exp", "iat"],
      }));
    } catch (error) {
      if (error instanceof IssuerUnavailableError) throw new CallerRejectedError(503, error.message);
      throw new CallerRejectedError(401, tokenProblem(error));
    }
    const claims = ActionsClaimsSchema.safeParse(payload);
    if (!claims.success) throw new CallerRejectedError(401, "The token is not a GitHub Actions job token: it lacks repository, run_id or run_attempt.");
    const { repository, run_id, run_attempt, workflow_ref } = claims.data;
    if (!this.allowed.has(repository.toLowerCase())) {
      throw new CallerRejectedError(403, `Runs of ${repository} may not call lab-reset; add the repository to ALLOWED_REPOSITORIES to allow it.`);
    }
    return { repository, runId: run_id, runAttempt: run_attempt, workflowRef: workflow_ref ?? null };
  }

  /**
   * The issuer's signing keys: its discovery document is read once per process, and jose's
   * remote key set caches the keys (refetching when a token names a key it has not seen).
   */
  private issuerKeys(): Promise<JWTVerifyGetKey> {
    this.keys ??= this.discover().catch((error: unknown) => {
      this.keys = undefined; // a failed discovery is retried by the next call
      throw new CallerRejectedError(503, `Could not read the token issuer's keys, so the token was not checked; retry later. (${(error as Error).message})`);
    });
    return this.keys;
  }

  private async discover(): Promise<JWTVerifyGetKey> {
    const { issuer } = this.options;
    const timeout = this.options.fetchTimeoutMs ?? 5_000;
    const url = `${issuer}/.well-known/openid-configuration`;
    let document: unknown;
    try {
      const response = await fetch(url, { redirect: "manual", signal: AbortSignal.timeout(timeout), headers: { accept: "application/json" } });
      if (response.status !== 200) throw new Error(`answered ${response.status}`);
      document = await response.json();
    } catch (error) {
      throw new Error(`GET ${url} failed: ${(error as Error).message}`);
    }
    const parsed = DiscoverySchema.safeParse(document);
    if (!parsed.success) throw new Error(`${url} has no jwks_uri`);
    // OpenID Connect Discovery: the document must name the issuer it was fetched from.
    if (parsed.data.issuer !== issuer) throw new Error(`${url} names issuer ${parsed.data.issuer}, not ${issuer}`);
    const remote = createRemoteJWKSet(new URL(parsed.data.jwks_uri), { timeoutDuration: timeout });
    return async (header, token) => {
      try {
        return await remote(header, token);
      } catch (error) {
        // The token named a key the issuer does not have: the token's fault.
        if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) throw error;
        throw new IssuerUnavailableError(`Could not read the token issuer's keys from ${parsed.data.jwks_uri}, so the token was not checked; retry later. (${(error as Error).message})`);
      }
    };
  }
}

/** The issuer's key set could not be fetched: our failure (503), not the caller's. */
class IssuerUnavailableError extends Error {
  override name = "IssuerUnavailableError";
}

/** What is wrong with a token, in words that say what to fix, never echoing the token. */
function tokenProblem(error: unknown): string {
  if (error instanceof errors.JWTExpired) return "The token has expired: request it right before calling lab-reset.";
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case "iss":
        return "The token was not issued by the configured issuer (OIDC_ISSUER).";
      case "aud":
        return "The token is for another audience: request it with the audience lab-reset expects (OIDC_AUDIENCE).";
      case "nbf":
      case "iat":
        return "The token is not valid yet: check the caller's clock.";
      default:
        return `The token lacks or has a wrong "${error.claim}" claim.`;
    }
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return "Only RS256 tokens signed by the issuer are accepted.";
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) return "The token is signed with a key the issuer does not publish.";
  if (error instanceof errors.JWSSignatureVerificationFailed) return "The token's signature does not verify with the issuer's keys.";
  return "The bearer token is not a well-formed signed JWT.";
}
