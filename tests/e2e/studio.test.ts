/**
 * Issue 5: the guide's studio flow on `/production`. Writer step → Director step →
 * "Zero-Fault 오디오 생성" starts an audio task on the reference backend → the
 * ProgressBar follows it → the result; and with the provider failure switched on, the
 * error with a retry that then completes.
 */
import type { Page } from 'playwright-core'
import { describe, expect, it } from 'vitest'
import { setUpE2eEnvironment } from './support/environment.js'
import { expectEveryTab, readBar } from './support/tabs.js'

const env = setUpE2eEnvironment()

const SCRIPT = '안녕하세요. tabcast 종단 간 테스트의 오디오 스크립트입니다. 모든 탭이 하나의 연결을 공유합니다.'

/** The studio with a short demo job (four steps, 250 ms apart). */
async function openStudio(): Promise<Page> {
  const page = await env.context.newPage()
  const params = new URLSearchParams({ backendUrl: env.backend.backendUrl, steps: '4', stepMs: '250' })
  await page.goto(`${env.demo.origin}/production?${params.toString()}`)
  await page.fill('textarea[name=script]', SCRIPT)
  await page.click('[data-testid=to-director]')
  await page.getByTestId('director-step').waitFor()
  return page
}

/** The id of the task the studio is following now. */
async function currentTaskId(page: Page): Promise<string> {
  const id = await page.getByTestId('audio-task').getAttribute('data-task-id')
  if (!id) throw new Error('the studio shows no audio task')
  return id
}

async function resultFields(page: Page): Promise<Record<string, string>> {
  return page.evaluate(() => {
    const out: Record<string, string> = {}
    for (const field of document.querySelectorAll('[data-testid=audio-result] [data-field]')) {
      out[field.getAttribute('data-field') ?? ''] = field.textContent ?? ''
    }
    return out
  })
}

describe('studio flow (/production)', () => {
  it('writer → director → generate: the bar follows the audio task to its result', async () => {
    const page = await openStudio()
    expect(await page.getByTestId('script-summary').textContent()).toContain(`${SCRIPT.length}자`)

    await page.click('[data-testid=generate-audio]')
    await page.getByTestId('audio-task').waitFor()
    const taskId = await currentTaskId(page)
    // Progress shows while the job runs, with "3 Audio" as the current step (watched in
    // the page, so no step is missed between polls).
    await page.waitForFunction(() => {
      const root = document.querySelector('[data-testid=audio-task] .tabcast-progress')
      const now = Number(root?.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow'))
      const audioStep = document.querySelector('[data-testid=step-audio]')?.getAttribute('aria-current')
      return root?.getAttribute('data-status') === 'running' && now > 0 && now < 100 && audioStep === 'step'
    }, undefined, { polling: 25 })
    await page.getByTestId('audio-result').waitFor({ timeout: 15_000 })
    await expectEveryTab([page], { status: 'completed', percent: 100, alert: '' })
    expect(await page.getByTestId('step-audio').getAttribute('class')).toBe('is-done')
    // The page is Korean on purpose, whatever the browser's language (English here).
    expect(await page.locator('.tabcast-progress__completed').textContent()).toBe('작업 완료')

    const fields = await resultFields(page)
    expect(fields['audio_id']).toMatch(/^audio_\d+$/)
    expect(fields['file_path']).toBe(`/media/audio/${fields['audio_id']}.mp3`)
    expect(fields['attempt']).toBe('1')
    // The server finished the task the page followed, with the same result, over one socket.
    const task = await env.backend.server.getTask(taskId)
    expect(task?.status).toBe('completed')
    expect(task?.result?.['audio_id']).toBe(fields['audio_id'])
    expect(env.backend.upgrades(taskId)).toBe(1)
  })

  it('a provider failure shows the error with a retry, and the retry completes', async () => {
    const page = await openStudio()
    await page.check('input[name=simulateFailure]')
    await page.click('[data-testid=generate-audio]')
    await page.getByTestId('audio-task').waitFor()
    const failedTask = await currentTaskId(page)

    const failure = page.getByTestId('audio-error')
    await failure.waitFor({ timeout: 15_000 })
    // The error is said once, by the bar's alert, in Korean; the panel below offers the retry.
    await expectEveryTab([page], { status: 'failed', alert: '작업 실패: ElevenLabs API 호출 실패' })
    expect(await failure.getAttribute('role')).toBeNull()
    expect(await failure.textContent()).not.toContain('ElevenLabs API 호출 실패')
    expect(await page.locator('main').textContent()).toContain('ElevenLabs API 호출 실패')
    // The bar stops where the failure option says the provider fails.
    const promised = Number(await page.getByTestId('fail-percent').textContent())
    expect(promised).toBe(50)
    expect((await readBar(page))?.percent).toBe(promised)
    expect(await page.getByTestId('step-audio').getAttribute('class')).toBe('is-failed')
    expect((await env.backend.server.getTask(failedTask))?.status).toBe('failed')

    await page.uncheck('input[name=simulateFailure]')
    await page.click('[data-testid=retry]')
    await expect.poll(() => currentTaskId(page)).not.toBe(failedTask)
    await page.getByTestId('audio-result').waitFor({ timeout: 15_000 })
    await expectEveryTab([page], { status: 'completed', percent: 100, alert: '' })
    expect(await failure.count()).toBe(0)
    expect((await env.backend.server.getTask(await currentTaskId(page)))?.status).toBe('completed')
  })
})
