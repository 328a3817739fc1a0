/** Moved to shared/once.ts, below the runtime; this stays until webhook.ts (rewritten on another branch) imports from there. */
export type { OncePerKey } from "../once.js";
