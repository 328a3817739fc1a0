/**
 * A real headless browser for page tests: Debian's chromium driven by playwright-core (which
 * cannot download its own browser here), a loopback server for the page under test, and a page
 * that records its console and every request that would leave the loopback host.
 */
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** One browser per test file: starting chromium takes seconds on a 2-core machine. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`no browser at ${CHROMIUM_PATH}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: ["--no-sandbox", "--disable-background-networking"], timeout: 60_000 });
}

export interface ServedPage {
  body: string;
  headers: Record<string, string>;
}

export interface PageServer {
  /** The page's address, with a function key in `?code=` as Azure's callers send it. */
  url: string;
  show(page: ServedPage): void;
  close(): Promise<void>;
}

/** Serves whatever page it was last shown at every path, on 127.0.0.1 and a free port. */
export async function startPageServer(): Promise<PageServer> {
  let current: ServedPage = { body: "", headers: {} };
  const server = createServer((_request, response) => {
    response.writeHead(200, current.headers).end(current.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/status?code=secret-function-key`,
    show: (page) => {
      current = page;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        // The browser may keep a connection alive; the server would wait for it.
        server.closeAllConnections();
      }),
  };
}

export interface OpenedPage {
  page: Page;
  context: BrowserContext;
  /** Console messages of every type, as `type: text`. */
  console: string[];
  /** Every request the page made, in order. */
  requests: string[];
  /** Requests to any host but the loopback one; each is aborted. */
  offLoopback: string[];
  close(): Promise<void>;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

export async function openPage(browser: Browser, url: string, viewport = { width: 1280, height: 800 }): Promise<OpenedPage> {
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(30_000);
  const opened: OpenedPage = { page: await context.newPage(), context, console: [], requests: [], offLoopback: [], close: () => context.close() };
  await context.route("**/*", async (route) => {
    if (LOOPBACK.has(new URL(route.request().url()).hostname)) return route.continue();
    opened.offLoopback.push(route.request().url());
    return route.abort();
  });
  opened.page.on("request", (request) => opened.requests.push(request.url()));
  opened.page.on("console", (message) => opened.console.push(`${message.type()}: ${message.text()}`));
  opened.page.on("pageerror", (error) => opened.console.push(`pageerror: ${error.message}`));
  await opened.page.goto(url, { waitUntil: "load", timeout: 30_000 });
  return opened;
}
