/**
 * The tabcast bench page: follows tasks through the shared client (one SharedWorker,
 * one WebSocket per task for every tab) and draws each snapshot the client hands its
 * snapshot listener (at most one per animation frame).
 */
import { getTabcastClient } from 'tabcast'
import { forget, installBenchApi, mark, recordMessage, render } from './probe.js'

const client = getTabcastClient()
let following: { taskId: string; stop: () => void }[] = []

installBenchApi('tabcast', {
  follow(taskIds, backendUrl) {
    for (const taskId of taskIds) {
      const stop = client.subscribe(
        taskId,
        {
          snapshot: (snapshot) =>
            render(taskId, { seq: snapshot.seq, progress: snapshot.progress, status: snapshot.status, connection: snapshot.connection }),
          message: (message) => recordMessage(taskId, message),
        },
        { backendUrl },
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
