/**
 * The local host's own settings (PORT aside): checked before anything starts, and light to load,
 * so that their tests need no process of their own.
 */

/** A mistake in what the admin set: said on one line (or the config's list), without a stack. */
export class StartupError extends Error {}

/** Upper bound of SIM_SPEED: about a simulated week per real minute. */
export const MAX_SIM_SPEED = 10_000;

/** The simulated lab's settings: SIM_SPEED (simulated minutes per real minute) and SIM_SEED. */
export function simulatorSettings(env: NodeJS.ProcessEnv = process.env): { speed: number; seed: number } {
  const speedText = env.SIM_SPEED?.trim() || "60";
  const speed = Number(speedText);
  if (!(speed > 0 && speed <= MAX_SIM_SPEED)) {
    throw new StartupError(`SIM_SPEED "${speedText}" is not a clock speed: set SIM_SPEED to the simulated minutes per real minute, a number above 0 and at most ${MAX_SIM_SPEED} (default 60)`);
  }
  const seedText = env.SIM_SEED?.trim() || "1";
  const seed = Number(seedText);
  if (!/^-?\d+$/.test(seedText) || !Number.isSafeInteger(seed)) {
    throw new StartupError(`SIM_SEED "${seedText}" is not a seed: set SIM_SEED to a whole number, e.g. 1 (the default); the same seed gives the same perf runs`);
  }
  return { speed, seed };
}
