/** Size probe: tabcast's React layer (hook, ProgressBar, provider); React itself is left out of the build. */
import { ProgressBar, TabcastProvider, useWebSocket } from 'tabcast/react'

Object.assign(globalThis, { tabcastReact: { ProgressBar, TabcastProvider, useWebSocket } })
