/** `/`: the idea in two sentences and the way in. */
import type { ReactNode } from 'react'
import { Link } from '../router.js'

export function HomePage(): ReactNode {
  return (
    <div className="page page--home">
      <header className="hero">
        <p className="eyebrow">tabcast demo</p>
        <h1>
          One socket per task,
          <br />
          however many tabs are watching.
        </h1>
        <p className="lead">
          tabcast follows long-running server tasks (audio generation, renders, exports) from the browser: a SharedWorker holds a
          single WebSocket per task, with reconnects, keep-alive and a polling fallback. Every open tab of your app gets the same
          live progress through it, so ten tabs cost the server one connection instead of ten.
        </p>
        <p className="lead lead--ko">
          하나의 SharedWorker가 작업당 WebSocket 하나만 유지하고, 열려 있는 모든 탭에 실시간 진행률을 전달합니다.
        </p>
      </header>
      <div className="tiles">
        <Link to="/test-websocket" className="tile" data-testid="home-test-link">
          <span className="tile__kicker">/test-websocket</span>
          <span className="tile__title">WebSocket 테스트 페이지</span>
          <span className="tile__text">
            Follow any task id, start a demo task, open the same link in three tabs and watch the inspector read
            &ldquo;3 tabs, 1 socket&rdquo;.
          </span>
        </Link>
        <Link to="/production" className="tile" data-testid="home-production-link">
          <span className="tile__kicker">/production</span>
          <span className="tile__title">스튜디오 · Writer → Director</span>
          <span className="tile__text">
            Write a script, press &ldquo;Zero-Fault 오디오 생성&rdquo; and follow the audio task to its result, or to a simulated
            provider failure and a retry.
          </span>
        </Link>
      </div>
    </div>
  )
}
