/**
 * A fault injector for tests and simulations: wraps any duplex (a frame channel, usually; a byte
 * stream to hit the framing itself) and, per direction, drops, delays, duplicates, corrupts (one
 * flipped bit) or cuts. Which units are hit is chosen by index or by probability from a seeded
 * random source, so a run is reproducible. Delays keep the order, as a byte stream would. Pure.
 */
import type { TallyError } from '../core/errors.ts';
import { CLOSED_HERE, linkClosed, ReceiverSlot, sendOnClosed, type Duplex, type DuplexReceiver, type UnitKind } from './stream.ts';

/** How long a delayed unit waits unless `delayMs` says otherwise. */
export const FAULT_DELAY_MS = 50;

/** Which units a fault hits: a probability per unit in [0, 1], or the 0-based indices of the units offered in that direction. */
export type FaultSelector = number | readonly number[];

/** The faults of one direction. Applied in this order: drop, corrupt, duplicate, delay; then the cut. */
export interface DirectionFaults {
  /** Units lost. */
  drop?: FaultSelector | undefined;
  /** Units with one bit flipped (at a random position). */
  corrupt?: FaultSelector | undefined;
  /** Units delivered twice. */
  duplicate?: FaultSelector | undefined;
  /** Units held back by `delayMs` (plus up to `jitterMs`); later units wait behind them. */
  delay?: FaultSelector | undefined;
  delayMs?: number | undefined;
  jitterMs?: number | undefined;
  /** Close the link once this many units have passed (0: the first unit closes it instead). */
  cutAfterUnits?: number | undefined;
  /** Close the link once this many bytes have passed; the unit that crosses the mark is truncated. */
  cutAfterBytes?: number | undefined;
}

/** The faults of both directions, seen from the wrapped end. */
export interface FaultPlan {
  /** Seeds the random source: the same seed and traffic give the same faults. */
  seed: number;
  /** What this end sends. */
  outgoing?: DirectionFaults | undefined;
  /** What this end receives. */
  incoming?: DirectionFaults | undefined;
}

/** What the injector did in one direction. */
export interface FaultStats {
  offered: number;
  passed: number;
  dropped: number;
  corrupted: number;
  duplicated: number;
  delayed: number;
  cut: boolean;
}

/** A duplex with faults, and the count of what they did. */
export interface FaultyDuplex<K extends UnitKind> extends Duplex<K> {
  readonly stats: { readonly outgoing: Readonly<FaultStats>; readonly incoming: Readonly<FaultStats> };
}

/** A deterministic random source in [0, 1) (mulberry32): for reproducible faults, never for keys. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function checkSelector(name: string, selector: FaultSelector | undefined): void {
  if (selector === undefined) return;
  if (typeof selector === 'number') {
    if (!(selector >= 0 && selector <= 1)) throw new RangeError(`${name}: expected a probability in [0, 1], got ${selector}`);
  } else if (!selector.every((i) => Number.isSafeInteger(i) && i >= 0)) {
    throw new RangeError(`${name}: expected unit indices (integers ≥ 0), got ${JSON.stringify(selector)}`);
  }
}

function checkCount(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) throw new RangeError(`${name}: expected an integer ≥ 0, got ${value}`);
}

function checkFaults(direction: string, faults: DirectionFaults): void {
  for (const kind of ['drop', 'corrupt', 'duplicate', 'delay'] as const) checkSelector(`${direction}.${kind}`, faults[kind]);
  checkCount(`${direction}.delayMs`, faults.delayMs);
  checkCount(`${direction}.jitterMs`, faults.jitterMs);
  checkCount(`${direction}.cutAfterUnits`, faults.cutAfterUnits);
  checkCount(`${direction}.cutAfterBytes`, faults.cutAfterBytes);
}

interface Item {
  readonly unit: Uint8Array | undefined;
  readonly copies: number;
  /** For a close marker: the close to pass on (undefined: an orderly one). */
  readonly closeWith: TallyError | undefined;
  ready: boolean;
}

/** One direction: decides each unit's faults when offered, passes units on in order when ready. */
class Lane {
  readonly stats: FaultStats = { offered: 0, passed: 0, dropped: 0, corrupted: 0, duplicated: 0, delayed: 0, cut: false };
  private passedBytes = 0;
  private readonly queue: Item[] = [];
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private stopped = false;

  constructor(
    private readonly name: 'outgoing' | 'incoming',
    private readonly faults: DirectionFaults,
    private readonly random: () => number,
    private readonly forward: (unit: Uint8Array) => void,
    private readonly finish: (error: TallyError | undefined) => void,
    private readonly cut: (error: TallyError) => void,
  ) {}

  offer(unit: Uint8Array): void {
    if (this.stopped) return;
    const index = this.stats.offered++;
    if (this.hits(this.faults.drop, index)) {
      this.stats.dropped++;
      return;
    }
    let out = unit;
    if (this.hits(this.faults.corrupt, index) && unit.length > 0) {
      out = unit.slice();
      const bit = Math.floor(this.random() * out.length * 8);
      out[bit >> 3] = (out[bit >> 3] as number) ^ (1 << (bit & 7));
      this.stats.corrupted++;
    }
    const copies = this.hits(this.faults.duplicate, index) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    const item: Item = { unit: out, copies, closeWith: undefined, ready: true };
    if (this.hits(this.faults.delay, index)) {
      this.stats.delayed++;
      item.ready = false;
      const ms = (this.faults.delayMs ?? FAULT_DELAY_MS) + Math.floor(this.random() * ((this.faults.jitterMs ?? 0) + 1));
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        item.ready = true;
        this.pump();
      }, ms);
      this.timers.add(timer);
    }
    this.queue.push(item);
    this.pump();
  }

  /** Passes a close on after the units queued before it. */
  offerClose(error: TallyError | undefined): void {
    if (this.stopped) return;
    this.queue.push({ unit: undefined, copies: 0, closeWith: error, ready: true });
    this.pump();
  }

  /** Drops what is queued and ignores what comes. */
  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private hits(selector: FaultSelector | undefined, index: number): boolean {
    if (selector === undefined) return false;
    if (typeof selector === 'number') return selector > 0 && this.random() < selector;
    return selector.includes(index);
  }

  private pump(): void {
    for (let head = this.queue[0]; head !== undefined && head.ready && !this.stopped; head = this.queue[0]) {
      this.queue.shift();
      if (head.unit === undefined) {
        this.stop();
        this.finish(head.closeWith);
        return;
      }
      for (let copy = 0; copy < head.copies && !this.stopped; copy++) this.pass(head.unit);
    }
  }

  private pass(unit: Uint8Array): void {
    const { cutAfterUnits, cutAfterBytes } = this.faults;
    if (cutAfterUnits !== undefined && this.stats.passed >= cutAfterUnits) return this.cutHere();
    const room = cutAfterBytes === undefined ? Infinity : cutAfterBytes - this.passedBytes;
    const out = unit.length > room ? unit.subarray(0, room) : unit;
    if (out.length > 0 || unit.length === 0) {
      this.stats.passed++;
      this.passedBytes += out.length;
      this.forward(out);
    }
    if ((cutAfterUnits !== undefined && this.stats.passed >= cutAfterUnits) || (cutAfterBytes !== undefined && this.passedBytes >= cutAfterBytes)) {
      this.cutHere();
    }
  }

  private cutHere(): void {
    this.stats.cut = true;
    this.stop();
    this.cut(linkClosed(`fault injector cut the link (${this.name}) after ${this.stats.passed} units, ${this.passedBytes} bytes`));
  }
}

class FaultyChannel<K extends UnitKind> implements FaultyDuplex<K> {
  readonly unit: K;
  readonly stats: { readonly outgoing: Readonly<FaultStats>; readonly incoming: Readonly<FaultStats> };
  private readonly slot = new ReceiverSlot();
  private readonly outgoing: Lane;
  private readonly incoming: Lane;
  /** Set when this side closes or cuts: from then on the wrapped duplex's close is not news. */
  private closing: TallyError | undefined;

  constructor(
    private readonly inner: Duplex<K>,
    plan: FaultPlan,
  ) {
    this.unit = inner.unit;
    const outgoing = plan.outgoing ?? {};
    const incoming = plan.incoming ?? {};
    checkFaults('outgoing', outgoing);
    checkFaults('incoming', incoming);
    // One random source per direction: what one direction draws cannot shift the other's faults,
    // however their traffic interleaves.
    const sendOn = (unit: Uint8Array) => {
      // A delayed unit whose link closed meanwhile is lost, as on a dead wire.
      if (inner.closeError === undefined) inner.send(unit);
    };
    this.outgoing = new Lane('outgoing', outgoing, seededRandom(plan.seed), sendOn, (error) => inner.close(error), (error) => this.cutNow(error));
    this.incoming = new Lane('incoming', incoming, seededRandom(plan.seed ^ 0x5bd1e995), (unit) => this.slot.deliver(unit), (error) => this.slot.end(error ?? linkClosed(CLOSED_HERE)), (error) => this.cutNow(error));
    this.stats = { outgoing: this.outgoing.stats, incoming: this.incoming.stats };
    inner.attach({ data: (unit) => this.incoming.offer(unit), closed: (error) => this.innerClosed(error) });
  }

  send(unit: Uint8Array): void {
    const closed = this.closeError;
    if (closed !== undefined) throw sendOnClosed(closed);
    this.outgoing.offer(unit);
  }

  attach(receiver: DuplexReceiver): void {
    this.slot.attach(receiver);
  }

  close(error?: TallyError): void {
    if (this.closeError !== undefined) return;
    this.closing = error ?? linkClosed(CLOSED_HERE);
    this.incoming.stop();
    this.slot.end(this.closing);
    // An orderly close lets delayed outgoing units leave first, as a socket's end() would.
    if (error === undefined) this.outgoing.offerClose(undefined);
    else {
      this.outgoing.stop();
      this.inner.close(error);
    }
  }

  get closeError(): TallyError | undefined {
    return this.closing ?? this.inner.closeError;
  }

  private cutNow(error: TallyError): void {
    // Also during an orderly close that is still flushing: the cut drops the rest and closes now.
    this.closing ??= error;
    this.outgoing.stop();
    this.incoming.stop();
    this.slot.end(error);
    this.inner.close(error);
  }

  private innerClosed(error: TallyError): void {
    if (this.closing !== undefined) return;
    this.outgoing.stop();
    // Units delayed before the close still arrive first.
    this.incoming.offerClose(error);
  }
}

/**
 * Wraps a duplex with faults; takes its receiver.
 * @throws RangeError for a probability outside [0, 1] or a negative index, count or delay
 */
export function injectFaults<K extends UnitKind>(inner: Duplex<K>, plan: FaultPlan): FaultyDuplex<K> {
  return new FaultyChannel(inner, plan);
}
