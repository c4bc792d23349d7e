/**
 * The once-handler of the test page, shown inside the broker inspector: this page
 * registers a handler for the task's completion and failure with `client.once`, and
 * shows where it ran (this tab or which other one), so several tabs side by side show
 * that it ran in exactly one. End-to-end tests read its `data-*` attributes. Keyed by
 * the task where it is used, so another task starts from a fresh count.
 */
import { useEffect, useState, type ReactNode } from 'react'
import { getTabcastClient, type OnceOutcome, type TaskOptions } from 'tabcast'

interface Props {
  taskId: string
  options: TaskOptions & { ackTimeout?: number }
}

interface Seen {
  /** Times the handler ran in this tab (more than one would be a bug). */
  calls: number
  outcome: OnceOutcome | null
}

export function OncePanel({ taskId, options }: Props): ReactNode {
  const [seen, setSeen] = useState<Seen>({ calls: 0, outcome: null })
  const client = getTabcastClient()
  const optionsKey = JSON.stringify(options)
  useEffect(() => {
    const given = JSON.parse(optionsKey) as Props['options']
    const ran = (): void => setSeen((previous) => ({ ...previous, calls: previous.calls + 1 }))
    const settled = (outcome: OnceOutcome): void => setSeen((previous) => ({ ...previous, outcome }))
    const stops = [
      client.once(taskId, 'completed', ran, { ...given, onSettled: settled }),
      client.once(taskId, 'failed', ran, { ...given, onSettled: settled }),
    ]
    return () => stops.forEach((stop) => stop())
  }, [client, taskId, optionsKey])

  const ranIn = seen.outcome?.ranIn ?? null
  return (
    <div
      className="once-panel"
      data-testid="once-panel"
      data-tab-id={client.tabId}
      data-once-calls={seen.calls}
      data-once-ran-in={ranIn ?? ''}
      data-once-event={seen.outcome?.event ?? ''}
    >
      <h3 className="small">Once-handler</h3>
      <p className="small">
        <span className="muted">This tab</span> <span className="mono">{client.tabId.slice(0, 8)}</span>
        <span className="muted"> · </span>
        {seen.outcome === null ? (
          <span className="muted">waiting for the task to end; it runs in exactly one tab</span>
        ) : ranIn === null ? (
          <span>no once-handler ran here ({seen.outcome.event})</span>
        ) : seen.outcome.ranHere ? (
          <strong>ran in this tab ({seen.outcome.event})</strong>
        ) : (
          <span>
            ran in tab <span className="mono">{ranIn.slice(0, 8)}</span>, not here
          </span>
        )}
      </p>
    </div>
  )
}
