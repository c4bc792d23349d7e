/**
 * What the fallback modes need, in one chunk that the tab loads only when the
 * SharedWorker cannot be used: the broker core runs in the page then.
 */
export { globalEnv } from '../global-env.js'
export { BUS_NAME, LeaderElection, createLeaderLink } from './leader-link.js'
export { createLocalLink } from './local-link.js'
