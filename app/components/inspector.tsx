/**
 * The broker inspector: what the SharedWorker (or the in-tab fallback) is doing for
 * every tab of this origin, read from `getTabcastClient().stats()` twice a second.
 * End-to-end tests read its `data-*` attributes.
 */
import { useEffect, useState, type ReactNode } from 'react'
import { getTabcastClient, type BrokerStats } from 'tabcast'
import { brokerHeadline } from '../format.js'

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

/** `children`: what the page adds about its own tab (the test page's once-handler). */
export function Inspector({ children }: { children?: ReactNode } = {}): ReactNode {
  const { stats, error } = useBrokerStats()
  const headline = stats ? brokerHeadline(stats) : '…'
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
      {children}
    </section>
  )
}

function StatsDetails({ stats }: { stats: BrokerStats }): ReactNode {
  return (
    <>
      <dl className="counters">
        <div>
          <dt>Tabs</dt>
          <dd data-testid="inspector-tabs">{stats.tabs}</dd>
        </div>
        <div>
          <dt>Sockets</dt>
          <dd data-testid="inspector-sockets">{stats.sockets}</dd>
        </div>
        <div>
          <dt>Pollers</dt>
          <dd data-testid="inspector-pollers">{stats.pollers}</dd>
        </div>
      </dl>
      <p className="inspector__mode small">
        <span className="muted">Mode</span> <strong data-testid="inspector-mode">{MODE_LABELS[stats.mode]}</strong>
        <span className="muted"> · {stats.modeReason} · broker </span>
        <span className="mono" title={`protocol v${stats.protocolVersion}`}>
          {stats.instanceId.slice(0, 8)}
        </span>
      </p>
      {stats.tasks.length === 0 ? (
        <p className="muted small">No task is followed yet. Start one.</p>
      ) : (
        <ul className="task-list" aria-label="Tasks held by the broker">
          {stats.tasks.map((task) => (
            <li
              key={task.key}
              className="task-item"
              data-task={task.projectId}
              data-connection={task.connection}
              data-status={task.status}
              data-transport={task.transport}
              data-subscribers={task.subscribers}
            >
              <div className="task-item__head">
                <span className="mono task-item__id" title={`${task.backend} · seq ${task.seq ?? '—'}`}>
                  {task.projectId}
                </span>
                <span className={`chip chip--${task.connection}`} title={`transport: ${task.transport}`}>
                  {task.connection}
                </span>
              </div>
              <dl className="task-item__stats">
                <div>
                  <dt>status</dt>
                  <dd>{task.status}</dd>
                </div>
                <div>
                  <dt title="reconnect attempts">attempts</dt>
                  <dd>{task.reconnectAttempts}</dd>
                </div>
                <div>
                  <dt title="subscriptions across all tabs">subscribers</dt>
                  <dd>{task.subscribers}</dd>
                </div>
                <div>
                  <dt title="messages from the server">in</dt>
                  <dd>{task.messagesIn}</dd>
                </div>
                <div>
                  <dt title="messages sent to the server (pings included)">out</dt>
                  <dd>{task.messagesOut}</dd>
                </div>
                <div>
                  <dt title="messages queued while the socket is down">queued</dt>
                  <dd>{task.queued}</dd>
                </div>
              </dl>
            </li>
          ))}
        </ul>
      )}
    </>
  )
}
