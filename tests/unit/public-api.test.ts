/**
 * The runtime names of the `tabcast` entry, listed: a name added to or dropped from
 * the public API shows up here and is a decision, not a side effect of `export *`.
 */
import { expect, it } from 'vitest'
import * as tabcast from 'tabcast'

it('exports exactly the public names', () => {
  expect(Object.keys(tabcast).sort()).toEqual(
    [
      'CONNECTION_ERROR_CODES',
      'CloseCode',
      'DEFAULT_BACKEND_URL',
      'DEFAULT_MAX_MESSAGE_BYTES',
      'DEFAULT_OPTIONS',
      'EPOCH_PATTERN',
      'MAX_CLIENT_MESSAGE_BYTES',
      'MAX_TASK_ID_LENGTH',
      'PROTOCOL_VERSION',
      'REMOTE_TASK_STATUSES',
      'SERVER_CAPABILITIES',
      'SERVER_MESSAGE_TYPES',
      'TASK_ID_PATTERN',
      'configureTabcast',
      'createTabcastClient',
      'createTaskUrl',
      'encodeClientMessage',
      'getTabcastClient',
      'hasCapability',
      'initialSnapshot',
      'isConnectionScopedError',
      'isFatalCloseCode',
      'isKnownMessage',
      'isPingMessage',
      'isTaskMessage',
      'mergeOptions',
      'parseClientMessage',
      'parseServerMessage',
      'parseStatusResponse',
      'reconnectDelay',
      'resolveBackend',
      'resolveOptions',
      'statusUrl',
      'streamUrl',
      'taskKey',
      'validateBearerToken',
      'validateServerMessage',
      'validateStatusResponse',
      'validateTaskId',
    ].sort(),
  )
})
