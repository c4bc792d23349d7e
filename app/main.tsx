/** Entry of the demo app. It imports tabcast only through its public entry points. */
import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import 'tabcast/progress-bar.css'
import './app.css'
import { App } from './app.js'

const container = document.getElementById('root')
if (!container) throw new Error('tabcast demo: #root is missing from index.html')

createRoot(container).render(
  <StrictMode>
    <App />
  </StrictMode>,
)
