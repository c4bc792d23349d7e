/**
 * The studio's desktop notification "오디오 생성 완료": shown from a once-handler
 * (`onCompletedOnce`), so one notification appears however many studio tabs follow
 * the task. Browsers grant the permission only from a user gesture, so it is asked for
 * by a button, never on load.
 */
import { useState, type ReactNode } from 'react'
import type { JsonRecord } from 'tabcast'

type Permission = NotificationPermission | 'unsupported'

function currentPermission(): Permission {
  return typeof Notification === 'undefined' ? 'unsupported' : Notification.permission
}

/** Shows the notification when permitted; returns whether it was shown. */
export function notifyAudioReady(taskId: string, result: JsonRecord): boolean {
  if (currentPermission() !== 'granted') return false
  const duration = typeof result['duration_seconds'] === 'number' ? ` · ${result['duration_seconds']}초` : ''
  // The tag replaces an earlier notification of the same task instead of stacking a second one.
  new Notification('오디오 생성 완료', { body: `작업 ${taskId}${duration}`, tag: `tabcast-${taskId}` })
  return true
}

/** The button that asks for the permission (a click is the user gesture browsers require). */
export function NotificationToggle(): ReactNode {
  const [permission, setPermission] = useState<Permission>(currentPermission)
  if (permission === 'unsupported') return <span className="muted small">이 브라우저는 데스크톱 알림을 지원하지 않습니다.</span>
  if (permission === 'granted') {
    return (
      <span className="small" data-testid="notifications" data-permission="granted">
        🔔 완료되면 데스크톱 알림을 한 번 보냅니다 (one notification, however many studio tabs are open)
      </span>
    )
  }
  return (
    <button
      type="button"
      className="button button--small"
      data-testid="notifications"
      data-permission={permission}
      disabled={permission === 'denied'}
      onClick={() => void Notification.requestPermission().then(setPermission)}
    >
      {permission === 'denied' ? '알림이 차단됨 (notifications blocked)' : '🔔 완료 알림 켜기 · Notify me'}
    </button>
  )
}
