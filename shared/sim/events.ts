/** A time-ordered queue of simulation events; ties run in the order they were scheduled. */
export interface SimEvent {
  at: number;
  seq: number;
  run: () => void | Promise<void>;
}

export class EventQueue {
  private heap: SimEvent[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(at: number, run: SimEvent["run"]): void {
    this.heap.push({ at, seq: this.seq++, run });
    let i = this.heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(this.heap[i]!, this.heap[parent]!)) break;
      [this.heap[i], this.heap[parent]] = [this.heap[parent]!, this.heap[i]!];
      i = parent;
    }
  }

  peek(): SimEvent | undefined {
    return this.heap[0];
  }

  pop(): SimEvent | undefined {
    const top = this.heap[0];
    const last = this.heap.pop();
    if (this.heap.length > 0 && last) {
      this.heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.heap.length && this.before(this.heap[l]!, this.heap[m]!)) m = l;
        if (r < this.heap.length && this.before(this.heap[r]!, this.heap[m]!)) m = r;
        if (m === i) break;
        [this.heap[i], this.heap[m]] = [this.heap[m]!, this.heap[i]!];
        i = m;
      }
    }
    return top;
  }

  private before(a: SimEvent, b: SimEvent): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }
}
