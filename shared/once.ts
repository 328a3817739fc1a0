/**
 * Work done once per key on an instance: 50 job-completed calls for one run record its job ends
 * once, the others join that write; a burst of job starts on one runner removes its routing
 * labels once. A failure is forgotten, so the next call tries again; with `forMs`, a success is
 * forgotten after that long too.
 */
export class OncePerKey {
  private readonly done = new Map<string, { doing: Promise<void>; until: number }>();

  constructor(
    private readonly clock: () => Date = () => new Date(),
    private readonly limit = 1_000,
  ) {}

  run(key: string, work: () => Promise<unknown>, forMs = Infinity): Promise<void> {
    const known = this.done.get(key);
    if (known && known.until > this.clock().getTime()) return known.doing;
    const doing = work().then(() => undefined);
    this.done.delete(key);
    this.done.set(key, { doing, until: this.clock().getTime() + forMs });
    if (this.done.size > this.limit) this.done.delete(this.done.keys().next().value!);
    doing.catch(() => this.done.get(key)?.doing === doing && this.done.delete(key));
    return doing;
  }
}
