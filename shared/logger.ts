// Structured logs (pino). One root logger per process; services take children named after themselves.
import { type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { service: name } });
}
