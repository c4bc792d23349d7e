/**
 * The broker inspector: what the SharedWorker (or the in-tab fallback) is doing for
 * every tab of this origin, read from `getTabcastClient().stats()` twice a second.
 * End-to-end tests read its `data-*` attributes.
 */
import { useEffect, useState, type ReactNode } from 'react'
import { getTabcastClient, type BrokerStats } from 'tabcast'
import { plural } from '../format.js'

const POLL_MS = 500

type InspectorState = { stats: BrokerStats | null; error: string | null; updatedAt: number | null }

const MODE_LABELS: Record<BrokerStats['mode'], string> = {
  'shared-worker': 'SharedWorker (shared by every tab)',
  leader: 'leader tab (shared by every tab)',
  'per-tab': 'this tab only (not shared)',
}

/** Keeps the latest broker stats, polled while mounted. */
function useBrokerStats(): InspectorState {
  const [state, setState] = useState<InspectorState>({ stats: null, error: null, updatedAt: null })
  useEffect(() => {
    let stopped = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const poll = async (): Promise<void> => {
      try {
        const stats = await getTabcastClient().stats()
        if (!stopped) setState({ stats, error: null, updatedAt: Date.now() })
      } catch (error) {
        if (!stopped) setState((previous) => ({ ...previous, error: error instanceof Error ? error.message : String(error) }))
      }
      // Chained rather than an interval: a slow broker never gets overlapping calls.
      if (!stopped) timer = setTimeout(() => void poll(), POLL_MS)
    }
    void poll()
    return () => {
      stopped = true
      clearTimeout(timer)
    }
  }, [])
  return state
}

export function Inspector(): ReactNode {
  const { stats, error } = useBrokerStats()
  const headline = stats ? headlineOf(stats) : '…'
  return (
    <section
      className="card inspector"
      data-testid="inspector"
      aria-labelledby="inspector-title"
      data-ready={stats ? 'true' : 'false'}
      {...(stats
        ? { 'data-tabs': stats.tabs, 'data-sockets': stats.sockets, 'data-pollers': stats.pollers, 'data-mode': stats.mode }
        : {})}
    >
      <header className="inspector__header">
        <h2 id="inspector-title">Broker inspector</h2>
        <span className="inspector__poll" title={`stats() every ${POLL_MS} ms`}>
          <span className={`pulse${error ? ' pulse--error' : ''}`} aria-hidden="true" /> live
        </span>
      </header>
      <p className="inspector__headline" data-testid="inspector-headline">
        {headline}
      </p>
      {stats ? (
        <p className="inspector__subline">
          탭 {stats.tabs}개가 소켓 {stats.sockets}개를 공유합니다
          {stats.pollers > 0 ? ` · 폴링 ${stats.pollers}개` : ''}
        </p>
      ) : null}
      {error ? (
        <p className="notice notice--error" role="alert">
          stats() failed: {error}
        </p>
      ) : null}
      {stats ? <StatsDetails stats={stats} /> : <p className="muted">Connecting to the broker…</p>}
    </section>
  )
}

/** "3 tabs, 1 socket" (and ", 1 poller" while a task is polled). */
export function headlineOf(stats: Pick<BrokerStats, 'tabs' | 'sockets' | 'pollers'>): string {
  const parts = [plural(stats.tabs, 'tab'), plural(stats.sockets, 'socket')]
  if (stats.pollers > 0) parts.push(plural(stats.pollers, 'poller'))
  return parts.join(', ')
}

function StatsDetails({ stats }: { stats: BrokerStats }): ReactNode {
  return (
    <>
      <dl className="facts">
        <div>
          <dt>Mode</dt>
          <dd data-testid="inspector-mode">{MODE_LABELS[stats.mode]}</dd>
        </div>
        <div>
          <dt>Why</dt>
          <dd>{stats.modeReason}</dd>
        </div>
        <div>
          <dt>Tabs</dt>
          <dd>{stats.tabs}</dd>
        </div>
        <div>
          <dt>Sockets</dt>
          <dd>{stats.sockets}</dd>
        </div>
        <div>
          <dt>Pollers</dt>
          <dd>{stats.pollers}</dd>
        </div>
        <div>
          <dt>Broker</dt>
          <dd className="mono" title={`protocol v${stats.protocolVersion}`}>
            {stats.instanceId.slice(0, 8)}
          </dd>
        </div>
      </dl>
      {stats.tasks.length === 0 ? (
        <p className="muted">No task is followed yet. Start one above.</p>
      ) : (
        <div className="table-scroll">
          <table className="tasks-table">
            <caption className="visually-hidden">Tasks held by the broker</caption>
            <thead>
              <tr>
                <th scope="col">Task</th>
                <th scope="col">Connection</th>
                <th scope="col">Status</th>
                <th scope="col" title="reconnect attempts">Attempts</th>
                <th scope="col" title="subscriptions across all tabs">Subs</th>
                <th scope="col" title="messages from the server">In</th>
                <th scope="col" title="messages sent to the server (pings included)">Out</th>
                <th scope="col" title="messages queued while the socket is down">Queued</th>
              </tr>
            </thead>
            <tbody>
              {stats.tasks.map((task) => (
                <tr
                  key={task.key}
                  data-task={task.projectId}
                  data-connection={task.connection}
                  data-status={task.status}
                  data-transport={task.transport}
                  data-subscribers={task.subscribers}
                >
                  <th scope="row" className="mono" title={`${task.backend} · seq ${task.seq ?? '—'}`}>
                    {task.projectId}
                  </th>
                  <td>
                    <span className={`chip chip--${task.connection}`}>{task.connection}</span>
                    <span className="muted small"> {task.transport}</span>
                  </td>
                  <td>{task.status}</td>
                  <td>{task.reconnectAttempts}</td>
                  <td>{task.subscribers}</td>
                  <td>{task.messagesIn}</td>
                  <td>{task.messagesOut}</td>
                  <td>{task.queued}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  )
}
