/**
 * The server's logging seam. Any object with these four methods fits (pino, winston
 * and console all do), so an embedding application keeps its own logger.
 */

export type LogFields = Record<string, unknown>

export interface Logger {
  debug(message: string, fields?: LogFields): void
  info(message: string, fields?: LogFields): void
  warn(message: string, fields?: LogFields): void
  error(message: string, fields?: LogFields): void
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent'

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 }

/** A logger that writes one line per event to the console, from `level` up. */
export function createConsoleLogger(level: LogLevel = 'warn'): Logger {
  const enabled = (at: LogLevel): boolean => RANK[at] >= RANK[level]
  const write = (at: Exclude<LogLevel, 'silent'>, message: string, fields?: LogFields): void => {
    if (!enabled(at)) return
    const line = `tabcast ${at}: ${message}`
    const sink = at === 'error' ? console.error : at === 'warn' ? console.warn : console.log
    if (fields === undefined || Object.keys(fields).length === 0) sink(line)
    else sink(line, fields)
  }
  return {
    debug: (message, fields) => write('debug', message, fields),
    info: (message, fields) => write('info', message, fields),
    warn: (message, fields) => write('warn', message, fields),
    error: (message, fields) => write('error', message, fields),
  }
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = createConsoleLogger('silent')
