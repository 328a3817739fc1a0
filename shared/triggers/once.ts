/**
 * Work done once per key on an instance: 50 job-completed calls for one run record its job ends
 * once, the others join that write. A failure is forgotten, so the next call tries again.
 */
export class OncePerKey {
  private readonly done = new Map<string, Promise<void>>();

  constructor(private readonly limit = 1_000) {}

  run(key: string, work: () => Promise<unknown>): Promise<void> {
    const known = this.done.get(key);
    if (known) return known;
    const doing = work().then(() => undefined);
    this.done.set(key, doing);
    if (this.done.size > this.limit) this.done.delete(this.done.keys().next().value!);
    doing.catch(() => this.done.get(key) === doing && this.done.delete(key));
    return doing;
  }
}
