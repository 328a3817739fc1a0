export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/**
 * A failure the person at the terminal can act on: printed as one line (what is wrong, where,
 * what to do), never with a stack trace.
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: typeof EXIT_FAILED | typeof EXIT_USAGE = EXIT_FAILED,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** A mistake in how the command was called: exit 2, as commander's own usage errors. */
export const usageError = (message: string) => new CliError(message, EXIT_USAGE);
