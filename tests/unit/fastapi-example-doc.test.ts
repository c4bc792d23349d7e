/**
 * PROTOCOL.md's FastAPI section quotes examples/fastapi/app.py: every Python block in
 * it must be a verbatim excerpt of the file (whole lines), so the two cannot drift.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'

const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8')

const protocol = read('PROTOCOL.md')
const app = read('examples/fastapi/app.py')

function fastapiSection(doc: string): string {
  const start = doc.indexOf('## Example: a compatible FastAPI backend')
  const end = doc.indexOf('\n## ', start + 1)
  if (start < 0) throw new Error('PROTOCOL.md has no "Example: a compatible FastAPI backend" section')
  return doc.slice(start, end < 0 ? undefined : end)
}

function pythonBlocks(section: string): string[] {
  return [...section.matchAll(/```python\n([\s\S]*?)```/g)].map((match) => match[1] ?? '')
}

describe("PROTOCOL.md's FastAPI example", () => {
  const section = fastapiSection(protocol)

  it('links the example file', () => {
    expect(section).toContain('[`examples/fastapi/app.py`](examples/fastapi/app.py)')
  })

  it('quotes only whole-line excerpts of examples/fastapi/app.py, unchanged', () => {
    const blocks = pythonBlocks(section)
    expect(blocks.length).toBeGreaterThanOrEqual(3)
    const appLines = `\n${app}`
    for (const block of blocks) {
      // Whole lines: the excerpt starts at a line start and ends at a line end of the file.
      expect(appLines.includes(`\n${block}`), `this excerpt differs from app.py:\n${block.slice(0, 400)}`).toBe(true)
    }
  })

  it('quotes the stream handler and the status endpoint', () => {
    const quoted = pythonBlocks(section).join('\n')
    expect(quoted).toContain('@app.websocket("/api/v1/ws/projects/{task_id}/stream")')
    expect(quoted).toContain('@app.get("/api/v1/projects/{task_id}/status")')
  })
})
