/** Entry of the demo app. It imports tabcast only through its public entry points. */
import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { configureTabcast, type ClientMode } from 'tabcast'
import 'tabcast/progress-bar.css'
import './app.css'
import { App } from './app.js'

// `?mode=leader|per-tab|shared-worker` forces where the broker runs (for trying the
// fallbacks and for the end-to-end tests); by default tabcast picks by trying.
const MODES: readonly ClientMode[] = ['auto', 'shared-worker', 'leader', 'per-tab']
const params = new URLSearchParams(window.location.search)
const mode = MODES.find((candidate) => candidate === params.get('mode'))
const handover = Number(params.get('leaderHandoverDelay') ?? Number.NaN)
configureTabcast({
  ...(mode ? { mode } : {}),
  ...(Number.isFinite(handover) && handover >= 0 ? { leaderHandoverDelay: handover } : {}),
})

const container = document.getElementById('root')
if (!container) throw new Error('tabcast demo: #root is missing from index.html')

createRoot(container).render(
  <StrictMode>
    <App />
  </StrictMode>,
)
