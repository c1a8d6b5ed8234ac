/** Structured logs: one JSON object per line on stderr, so a terminal and a collector both read them. */

/** A log line's level. */
export type LogLevel = 'info' | 'warn' | 'error';

/** Writes structured log lines. */
export interface Logger {
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
}

/** A logger writing JSON lines to stderr. */
export function jsonLogger(stream: { write(text: string): unknown } = process.stderr): Logger {
  return {
    log(level, message, fields = {}) {
      stream.write(`${JSON.stringify({ time: new Date().toISOString(), level, message, ...fields }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
    },
  };
}
