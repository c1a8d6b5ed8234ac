/** Tasks run one after another per key, within this process; tasks on different keys run at once. */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<void>>();

  /** Runs task once every earlier task on the same key has settled (resolved or rejected). */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const run = (this.#tails.get(key) ?? Promise.resolve()).then(task);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    // An idle key holds nothing: the map only grows with the keys in use.
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return run;
  }
}
