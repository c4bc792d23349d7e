/**
 * A tiny client-side router over the History API: the current path and query as
 * external state, `navigate()` and a `<Link>` that keeps `?backendUrl=` across pages.
 */
import { useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent, type ReactNode } from 'react'

const NAVIGATE_EVENT = 'tabcast-demo:navigate'

function subscribeLocation(onChange: () => void): () => void {
  window.addEventListener('popstate', onChange)
  window.addEventListener(NAVIGATE_EVENT, onChange)
  return () => {
    window.removeEventListener('popstate', onChange)
    window.removeEventListener(NAVIGATE_EVENT, onChange)
  }
}

/** The path of the current address, without a trailing slash (except `/`). */
export function usePathname(): string {
  return useSyncExternalStore(subscribeLocation, () => normalisePath(window.location.pathname))
}

/** The query string of the current address (`?a=b` or `''`). A string, so snapshots compare by value. */
export function useSearch(): string {
  return useSyncExternalStore(subscribeLocation, () => window.location.search)
}

export function normalisePath(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, '') : path
}

/** Goes to `to` (a path with an optional query) without reloading. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (options.replace) window.history.replaceState(null, '', to)
  else window.history.pushState(null, '', to)
  window.dispatchEvent(new Event(NAVIGATE_EVENT))
  if (!options.replace) window.scrollTo(0, 0)
}

/**
 * Replaces the query of the current address without a navigation event: the page
 * that calls it already shows what the new address describes.
 */
export function replaceQuery(params: URLSearchParams): void {
  const query = params.toString()
  const url = `${window.location.pathname}${query ? `?${query}` : ''}${window.location.hash}`
  window.history.replaceState(window.history.state, '', url)
}

/** `path` with the current `?backendUrl=` carried over, so a chosen backend survives navigation. */
export function withBackendParam(path: string): string {
  const backend = new URLSearchParams(window.location.search).get('backendUrl')
  if (backend === null) return path
  const url = new URL(path, window.location.origin)
  if (!url.searchParams.has('backendUrl')) url.searchParams.set('backendUrl', backend)
  return `${url.pathname}${url.search}${url.hash}`
}

export interface LinkProps extends Omit<AnchorHTMLAttributes<HTMLAnchorElement>, 'href'> {
  to: string
  children?: ReactNode
}

/** An `<a>` that navigates in place on a plain left click and behaves as a link otherwise. */
export function Link({ to, onClick, children, ...rest }: LinkProps): ReactNode {
  // Read the address at render time: the search string is part of router state, so a
  // change re-renders the pages that render links.
  useSearch()
  const href = withBackendParam(to)
  const handleClick = (event: MouseEvent<HTMLAnchorElement>): void => {
    onClick?.(event)
    if (event.defaultPrevented || event.button !== 0) return
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
    if (rest.target !== undefined && rest.target !== '_self') return
    event.preventDefault()
    navigate(href)
  }
  return (
    <a href={href} onClick={handleClick} {...rest}>
      {children}
    </a>
  )
}
