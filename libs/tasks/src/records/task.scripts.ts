/**
 * Lua scripts that change task records. Each runs atomically in Redis, so a task's hash, its
 * indexes and its project's counters never disagree, and two racing transitions (cancel against
 * completion) have exactly one winner. Keys are built as `<prefix>:<part>:<part>` (redisKey).
 */

const COMMON = `
local prefix = ARGV[1]
local function k(...) return table.concat({prefix, ...}, ':') end
local function pending(s) return s == 'queued' or s == 'processing' end
local function terminal(s) return s == 'completed' or s == 'failed' or s == 'cancelled' end
local function index_status(pid, ttype, status, id, score, add)
  local keys = {k('tasks', 'by_project', pid, 'status', status),
                k('tasks', 'by_project', pid, 'status', status, 'type', ttype)}
  for _, key in ipairs(keys) do
    if add then redis.call('ZADD', key, score, id) else redis.call('ZREM', key, id) end
  end
  if add then redis.call('SADD', k('tasks', 'by_status', status), id)
  else redis.call('SREM', k('tasks', 'by_status', status), id) end
end
`;

/**
 * KEYS: task hash, then the queue's wait list, prioritized and delayed sets (BullMQ's keys).
 * ARGV: prefix, task_id, project_id, task_type, created_ms, now_iso, backlog limit (-1: none),
 * then field/value pairs of the new hash. Error replies EXISTS when the id is taken, QUEUE_FULL
 * when the queue already holds the limit of waiting jobs (checked in the same step as the create).
 */
export const CREATE_TASK = `${COMMON}
local id, pid, ttype, score, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local limit = tonumber(ARGV[7])
if limit >= 0 then
  local backlog = redis.call('LLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4])
  if backlog >= limit then return redis.error_reply('QUEUE_FULL') end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('EXISTS') end
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
redis.call('ZADD', k('tasks', 'by_project', pid), score, id)
redis.call('ZADD', k('tasks', 'by_project', pid, 'type', ttype), score, id)
index_status(pid, ttype, 'queued', id, score, true)
local pk = k('projects', pid)
if redis.call('HSETNX', pk, 'project_id', pid) == 1 then
  redis.call('HSET', pk, 'project_name', pid, 'created_at', now,
    'storage_prefix', 'projects/' .. pid .. '/', 'active_tasks', 0, 'pending_tasks', 0, 'task_count', 0)
end
redis.call('HINCRBY', pk, 'task_count', 1)
redis.call('HINCRBY', pk, 'pending_tasks', 1)
redis.call('HSET', pk, 'last_activity', now)
redis.call('SADD', k('projects', 'active'), pid)
return 1
`;

/** Stream of webhook events written by TRANSITION_TASK (the outbox), relayed by @app/webhooks. */
export const WEBHOOK_OUTBOX_PARTS = ['webhooks', 'outbox'] as const;

/**
 * KEYS: task hash, progress hash. ARGV: prefix, to, allowed-from (comma list), now_iso,
 * expected run id ('' = any), JSON object of fields to set, JSON array of fields to delete.
 * Returns the previous status; error replies NOT_FOUND, ILLEGAL <status>, STALE_RUN.
 * A task with a callback_url that becomes completed/failed/cancelled gets its webhook event in
 * the outbox stream and its `webhook` state set to pending, in the same atomic step (no event
 * is lost between the transition and its delivery queue). The event snapshots the outcome.
 */
export const TRANSITION_TASK = `${COMMON}
local to, allowed, now, run = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local cur = redis.call('HMGET', KEYS[1], 'status', 'project_id', 'task_type', 'created_ms', 'run_id')
local from, pid, ttype, score = cur[1], cur[2], cur[3], cur[4]
if not from then return redis.error_reply('NOT_FOUND') end
if not string.find(',' .. allowed .. ',', ',' .. from .. ',', 1, true) then
  return redis.error_reply('ILLEGAL ' .. from)
end
if run ~= '' and cur[5] ~= run then return redis.error_reply('STALE_RUN') end
local set = cjson.decode(ARGV[6])
local flat = {'status', to, 'updated_at', now}
for f, v in pairs(set) do flat[#flat + 1] = f; flat[#flat + 1] = v end
redis.call('HSET', KEYS[1], unpack(flat))
local del = cjson.decode(ARGV[7])
if #del > 0 then redis.call('HDEL', KEYS[1], unpack(del)) end
if from ~= to then
  local id = string.sub(KEYS[1], #k('tasks') + 2)
  index_status(pid, ttype, from, id, score, false)
  index_status(pid, ttype, to, id, score, true)
  local pk = k('projects', pid)
  if from == 'processing' then redis.call('HINCRBY', pk, 'active_tasks', -1) end
  if to == 'processing' then redis.call('HINCRBY', pk, 'active_tasks', 1) end
  if pending(from) and not pending(to) then
    if redis.call('HINCRBY', pk, 'pending_tasks', -1) <= 0 then
      redis.call('SREM', k('projects', 'active'), pid)
    end
  elseif pending(to) and not pending(from) then
    redis.call('HINCRBY', pk, 'pending_tasks', 1)
    redis.call('SADD', k('projects', 'active'), pid)
  end
  redis.call('HSET', pk, 'last_activity', now)
end
if from ~= to and terminal(to) then
  local w = redis.call('HMGET', KEYS[1], 'callback_url', 'retries', 'result', 'error', 'completed_at')
  if w[1] and w[1] ~= '' then
    local id = string.sub(KEYS[1], #k('tasks') + 2)
    local retries = w[2] or '0'
    local msg = 'msg_' .. id .. '_' .. to .. '_' .. retries
    local event = 'task.' .. to
    redis.call('HSET', KEYS[1], 'webhook',
      cjson.encode({id = msg, event = event, state = 'pending', attempts = 0}))
    redis.call('XADD', k('webhooks', 'outbox'), 'MAXLEN', '~', 1000000, '*',
      'webhook_id', msg, 'event', event, 'task_id', id, 'project_id', pid, 'status', to,
      'retries', retries, 'result', w[3] or '', 'error', w[4] or '', 'completed_at', w[5] or '')
  end
end
if terminal(to) then
  redis.call('EXPIRE', KEYS[2], 3600)
elseif to == 'processing' or to == 'queued' then
  redis.call('DEL', KEYS[2])
end
return from
`;

/**
 * KEYS: task hash, progress hash. ARGV: prefix, run id, fraction, step, now_iso.
 * Progress only moves forward, and only the current run may write it. Returns {status, progress}
 * so the caller learns of a cancel on its next report.
 */
export const REPORT_PROGRESS = `${COMMON}
local run, fraction, step, now = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local cur = redis.call('HMGET', KEYS[1], 'status', 'run_id', 'progress', 'current_step')
if cur[1] ~= 'processing' or cur[2] ~= run then return {cur[1] or '', cur[3] or '0'} end
local old = tonumber(cur[3]) or 0
if fraction < old then fraction = old end
if fraction > 1 then fraction = 1 end
local p = string.format('%.4f', fraction)
redis.call('HSET', KEYS[1], 'progress', p, 'current_step', step, 'updated_at', now)
if cur[4] ~= step or redis.call('HEXISTS', KEYS[2], 'step_started_at') == 0 then
  redis.call('HSET', KEYS[2], 'step_started_at', now)
end
redis.call('HSET', KEYS[2], 'task_id', string.sub(KEYS[1], #k('tasks') + 2),
  'progress', p, 'current_step', step, 'updated_at', now)
return {'processing', p}
`;

/**
 * KEYS: task hash, the queue's wait list, its prioritized set. ARGV: job id.
 * The job's 1-based rank among waiting jobs (plain ones run first, then the prioritized set in
 * order), 0 when it is not waiting; stored in the record as `queue_position` and returned.
 */
export const RECORD_QUEUE_POSITION = `
local rank = redis.call('ZRANK', KEYS[3], ARGV[1])
local position = 0
if rank then position = redis.call('LLEN', KEYS[2]) + rank + 1 end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'queue_position', position) end
return position
`;
