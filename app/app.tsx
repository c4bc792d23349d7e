/** The demo's shell: header navigation and the three routes. */
import { useEffect, type ReactNode } from 'react'
import { HomePage } from './pages/home.js'
import { ProductionPage } from './pages/production.js'
import { TestWebSocketPage } from './pages/test-websocket.js'
import { Link, usePathname } from './router.js'

interface Route {
  path: string
  title: string
  nav: string
  render: () => ReactNode
}

const ROUTES: readonly Route[] = [
  { path: '/', title: 'tabcast demo', nav: 'Home', render: () => <HomePage /> },
  { path: '/test-websocket', title: 'WebSocket 테스트 · tabcast', nav: 'Test page', render: () => <TestWebSocketPage /> },
  { path: '/production', title: '스튜디오 · tabcast', nav: 'Studio', render: () => <ProductionPage /> },
]

export function App(): ReactNode {
  const pathname = usePathname()
  const route = ROUTES.find((candidate) => candidate.path === pathname) ?? null
  const title = route?.title ?? 'Not found · tabcast'
  useEffect(() => {
    document.title = title
  }, [title])

  return (
    <>
      <header className="topbar">
        <div className="topbar__inner">
          <Link to="/" className="brand" aria-label="tabcast home">
            <span className="brand__mark" aria-hidden="true" />
            tabcast
          </Link>
          <nav aria-label="Pages">
            <ul className="nav">
              {ROUTES.map((candidate) => (
                <li key={candidate.path}>
                  <Link to={candidate.path} aria-current={candidate.path === pathname ? 'page' : undefined}>
                    {candidate.nav}
                  </Link>
                </li>
              ))}
            </ul>
          </nav>
        </div>
      </header>
      <main className="main" id="main">
        {route ? route.render() : <NotFound pathname={pathname} />}
      </main>
      <footer className="footer">
        <p>
          tabcast · one SharedWorker, one WebSocket per task, every tab. Built on the design guide &ldquo;WebSocket 클라이언트 구현
          가이드&rdquo;.
        </p>
      </footer>
    </>
  )
}

function NotFound({ pathname }: { pathname: string }): ReactNode {
  return (
    <div className="page">
      <h1>404</h1>
      <p>
        Nothing lives at <code>{pathname}</code>. <Link to="/">Go home</Link>.
      </p>
    </div>
  )
}
