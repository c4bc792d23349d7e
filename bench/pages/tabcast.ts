/**
 * The tabcast bench page: follows tasks through the shared client (one SharedWorker,
 * one WebSocket per task for every tab) and draws each snapshot the client hands its
 * snapshot listener. With `delivery: 'messages'` it also takes every message (a page
 * with an `onMessage` consumer); with `'snapshots'` it only draws, as a
 * `<ProgressBar>` does, and sees the end of a task in the snapshot that carries it.
 */
import { getTabcastClient, type TaskSnapshot } from 'tabcast'
import { forget, installBenchApi, mark, recordMessage, render } from './probe.js'

const client = getTabcastClient()
let following: { taskId: string; stop: () => void }[] = []

installBenchApi('tabcast', {
  follow(taskIds, backendUrl, _params, delivery) {
    for (const taskId of taskIds) {
      let ended = false
      const draw = (snapshot: TaskSnapshot): void =>
        render(taskId, { seq: snapshot.seq, progress: snapshot.progress, status: snapshot.status, connection: snapshot.connection })
      const stop = client.subscribe(
        taskId,
        delivery === 'messages'
          ? { snapshot: draw, message: (message) => recordMessage(taskId, message) }
          : {
              snapshot: (snapshot) => {
                draw(snapshot)
                // The terminal event, as a page without onMessage learns it.
                if (!ended && (snapshot.status === 'completed' || snapshot.status === 'failed')) {
                  ended = true
                  recordMessage(taskId, { type: snapshot.status === 'completed' ? 'completed' : 'error' })
                }
              },
            },
        { backendUrl, delivery },
      )
      following.push({ taskId, stop })
    }
    // The handshake with the broker (SharedWorker connect, tab lock, hello) is done.
    client.mode().then(
      () => mark('ready'),
      () => {},
    )
  },
  unfollow() {
    for (const { taskId, stop } of following) {
      stop()
      forget(taskId)
    }
    following = []
  },
})
