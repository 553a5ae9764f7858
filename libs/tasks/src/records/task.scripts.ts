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
 * the job's BullMQ priority ('' when the task is not about to be queued), then field/value pairs
 * of the new hash. Error replies EXISTS when the id is taken, QUEUE_FULL when the queue already
 * holds the limit of waiting jobs (checked in the same step as the create).
 *
 * Returns the queue position the job will have once added (and stores it as `queue_position`):
 * the plain waiting jobs, plus the prioritized ones of the same or a more urgent priority — BullMQ
 * scores a prioritized job `priority · 2³² + counter`, and the job gets a counter above every job
 * already there, so these are exactly the ones ranked ahead of it — plus one. This is the rank
 * that reading the queue after the add gives, without another round trip.
 */
export const CREATE_TASK = `${COMMON}
local id, pid, ttype, score, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local limit = tonumber(ARGV[7])
if limit >= 0 then
  local backlog = redis.call('LLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4])
  if backlog >= limit then return redis.error_reply('QUEUE_FULL') end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('EXISTS') end
redis.call('HSET', KEYS[1], unpack(ARGV, 9))
local position = 0
if ARGV[8] ~= '' then
  local below = string.format('(%.0f', (tonumber(ARGV[8]) + 1) * 4294967296)
  position = redis.call('LLEN', KEYS[2]) + redis.call('ZCOUNT', KEYS[3], '-inf', below) + 1
  redis.call('HSET', KEYS[1], 'queue_position', position)
end
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
return position
`;

/** Stream of webhook events written by TRANSITION_TASK (the outbox), relayed by @app/webhooks. */
export const WEBHOOK_OUTBOX_PARTS = ['webhooks', 'outbox'] as const;

/**
 * The one implementation of a status change, shared by TRANSITION_TASK and START_RUN (appended
 * to COMMON). `apply_transition` writes `flat` (field/value pairs, status and updated_at among
 * them) and deletes `del` on the task hash `tk`, moves the task between the status indexes,
 * keeps its project's counters, and on a terminal transition of a task with a callback_url
 * writes the webhook event to the outbox stream and sets its `webhook` state to pending (in the
 * same atomic step, so no event is lost between the transition and its delivery queue; the
 * event snapshots the outcome). The progress hash `pk` expires on a terminal status and is
 * cleared when a run starts or the task is queued again.
 */
const APPLY_TRANSITION = `
local function apply_transition(tk, pk, pid, ttype, score, from, to, now, flat, del)
  redis.call('HSET', tk, unpack(flat))
  if #del > 0 then redis.call('HDEL', tk, unpack(del)) end
  local id = string.sub(tk, #k('tasks') + 2)
  if from ~= to then
    index_status(pid, ttype, from, id, score, false)
    index_status(pid, ttype, to, id, score, true)
    local proj = k('projects', pid)
    if from == 'processing' then redis.call('HINCRBY', proj, 'active_tasks', -1) end
    if to == 'processing' then redis.call('HINCRBY', proj, 'active_tasks', 1) end
    if pending(from) and not pending(to) then
      if redis.call('HINCRBY', proj, 'pending_tasks', -1) <= 0 then
        redis.call('SREM', k('projects', 'active'), pid)
      end
    elseif pending(to) and not pending(from) then
      redis.call('HINCRBY', proj, 'pending_tasks', 1)
      redis.call('SADD', k('projects', 'active'), pid)
    end
    redis.call('HSET', proj, 'last_activity', now)
  end
  if from ~= to and terminal(to) then
    local w = redis.call('HMGET', tk, 'callback_url', 'retries', 'result', 'error', 'completed_at')
    if w[1] and w[1] ~= '' then
      local retries = w[2] or '0'
      local msg = 'msg_' .. id .. '_' .. to .. '_' .. retries
      local event = 'task.' .. to
      redis.call('HSET', tk, 'webhook',
        cjson.encode({id = msg, event = event, state = 'pending', attempts = 0}))
      redis.call('XADD', k('webhooks', 'outbox'), 'MAXLEN', '~', 1000000, '*',
        'webhook_id', msg, 'event', event, 'task_id', id, 'project_id', pid, 'status', to,
        'retries', retries, 'result', w[3] or '', 'error', w[4] or '', 'completed_at', w[5] or '')
    end
  end
  if terminal(to) then
    redis.call('EXPIRE', pk, 3600)
  elseif to == 'processing' or to == 'queued' then
    redis.call('DEL', pk)
  end
end
`;

/**
 * KEYS: task hash, progress hash. ARGV: prefix, to, allowed-from (comma list), now_iso,
 * expected run id ('' = any), JSON object of fields to set, JSON array of fields to delete.
 * Returns the previous status; error replies NOT_FOUND, ILLEGAL <status>, STALE_RUN.
 * Indexes, counters, the webhook outbox and the progress hash as apply_transition describes.
 */
export const TRANSITION_TASK = `${COMMON}${APPLY_TRANSITION}
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
apply_transition(KEYS[1], KEYS[2], pid, ttype, score, from, to, now, flat, cjson.decode(ARGV[7]))
return from
`;

/**
 * A worker picking up a task's job, in one step: checks the record and, when this job may run
 * it, moves it to `processing` (queued → processing, or processing → processing when a stalled
 * run of a lost worker is taken over) with attempts + 1 and run_id `<job id>#<attempt>`.
 * KEYS: task hash, progress hash. ARGV: prefix, job id, now_iso, JSON object of further fields
 * to set. Returns {outcome, previous status, previous run id, field, value, ...} where the
 * fields are the whole record after the step (none when missing). Outcomes: `missing` (no
 * record), `superseded` (the record belongs to another job: a manual retry made a new one),
 * `illegal` (status neither queued nor processing: cancelled or finished), `started`.
 */
export const START_RUN = `${COMMON}${APPLY_TRANSITION}
local job, now = ARGV[2], ARGV[3]
local cur = redis.call('HMGET', KEYS[1], 'status', 'project_id', 'task_type', 'created_ms', 'run_id',
  'job_id', 'attempts')
local from = cur[1]
if not from then return {'missing', '', ''} end
local outcome = 'started'
if cur[6] ~= job then
  outcome = 'superseded'
elseif not pending(from) then
  outcome = 'illegal'
else
  local attempt = (tonumber(cur[7]) or 0) + 1
  local flat = {'status', 'processing', 'updated_at', now,
    'attempts', tostring(attempt), 'run_id', job .. '#' .. attempt}
  for f, v in pairs(cjson.decode(ARGV[4])) do flat[#flat + 1] = f; flat[#flat + 1] = v end
  apply_transition(KEYS[1], KEYS[2], cur[2], cur[3], cur[4], from, 'processing', now, flat, {})
end
local out = {outcome, from, cur[5] or ''}
local h = redis.call('HGETALL', KEYS[1])
for i = 1, #h do out[#out + 1] = h[i] end
return out
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
