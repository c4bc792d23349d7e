'use client'
/**
 * `tabcast/react`: the design guide's `useWebSocket` hook and `<ProgressBar />`
 * component over the shared tabcast client. Switching from the guide's own hook and
 * component is a change of import path. The component's stylesheet is a separate
 * import: `import 'tabcast/progress-bar.css'`.
 */
export { useWebSocket, type UseWebSocketOptions, type UseWebSocketResult } from './use-web-socket.js'
export { ProgressBar, type ProgressBarProps } from './progress-bar.js'
export { TabcastProvider, useTabcastClient, type TabcastProviderProps } from './context.js'
export {
  englishLabels,
  koreanLabels,
  progressBarLabels,
  type ProgressBarLabels,
  type ProgressBarLocale,
} from './labels.js'
// The guide's hook module also exported its message type; code that imported it from
// there keeps compiling after switching the import path to `tabcast/react`.
export type { JsonRecord, ServerMessage, WebSocketMessage } from '../protocol.js'
export type { ConnectionState, TabcastClient, TaskOptions, TaskSnapshot, TaskStatus } from '../types.js'
