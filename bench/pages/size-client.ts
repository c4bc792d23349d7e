/** Size probe: everything a tab needs to follow tasks with tabcast's client, nothing else. */
import { configureTabcast, createTabcastClient, getTabcastClient } from 'tabcast'

Object.assign(globalThis, { tabcast: { configureTabcast, createTabcastClient, getTabcastClient } })
