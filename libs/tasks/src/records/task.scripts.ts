/**
 * Lua scripts that change task records. Each runs atomically in Redis, so a task's hash, its
 * indexes and its project's counters never disagree, and two racing moves (cancel against
 * completion) have exactly one winner. Keys are built as `<partition prefix>:<part>:<part>`
 * (redisKey on the task's partition prefix, libs/redis/src/redis-partitions.ts): a script touches
 * the keys of one partition, one Redis Cluster slot, only (task-scripts.slots.spec.ts checks).
 *
 * Each partition keeps `ended_tasks`, a sorted set of its ended tasks scored by end time (ms),
 * written in the same step as the terminal move and left when a manual retry queues the task
 * again: the retention sweeper reads only what is due from it (SWEEP_TASK, EXPIRE_MEDIA).
 *
 * Every script is safe to run twice with the same arguments: ioredis re-sends a command whose
 * reply was lost when it reconnects, and callers retry outcome writes. A move carries an
 * operation token; a record whose `last_op` is that token answers as the first run did.
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
end
local function contains(list, value)
  return value ~= nil and string.find(',' .. list .. ',', ',' .. value .. ',', 1, true) ~= nil
end
`;

/**
 * KEYS: task hash, the idempotency key (or a placeholder of the same partition). ARGV: the
 * partition's key prefix, task_id, project_id, task_type, created_ms, now_iso, the queue
 * position the job will have once added (0: not about to be queued; read by QUEUE_SNAPSHOT just
 * before), operation token, idempotency entry JSON ('' : none), its TTL in seconds, then
 * field/value pairs of the new hash. Error reply EXISTS when the id is taken by another create.
 *
 * Every key it touches is in the task's partition (one Redis Cluster slot): the record, the
 * project's indexes and counters, the partition's active-project set, the idempotency key.
 * With an idempotency entry, the key is set in the same step to that entry with the task id and
 * position added: a repeat of the request finds this task even when every write after the
 * create failed; the key's name after the partition prefix is kept in the hash
 * (`idempotency_key`) so that retention removes the entry with the task. Run twice with the
 * same token, it answers the stored position again.
 */
export const CREATE_TASK = `${COMMON}
local id, pid, ttype, score, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local position, op = tonumber(ARGV[7]), ARGV[8]
local existing = redis.call('HMGET', KEYS[1], 'create_op', 'queue_position')
if existing[1] then
  if existing[1] == op then return tonumber(existing[2]) or 0 end
  return redis.error_reply('EXISTS')
end
redis.call('HSET', KEYS[1], unpack(ARGV, 11))
redis.call('HSET', KEYS[1], 'create_op', op, 'last_op', op, 'last_op_from', '',
  'queue_position', position)
if ARGV[9] ~= '' then
  local entry = cjson.decode(ARGV[9])
  entry.task_id = id
  entry.queue_position = position
  redis.call('SET', KEYS[2], cjson.encode(entry), 'EX', tonumber(ARGV[10]))
  if string.sub(KEYS[2], 1, #prefix + 1) == prefix .. ':' then
    redis.call('HSET', KEYS[1], 'idempotency_key', string.sub(KEYS[2], #prefix + 2))
  end
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

/**
 * A queue's room and the rank a new job would take, read in the queue's own slot (BullMQ's keys
 * share the queue's hash tag) just before a task is created or retried. KEYS: the queue's wait
 * list, prioritized and delayed sets. ARGV: the job's BullMQ priority, the backlog limit (-1:
 * none). Error reply QUEUE_FULL when the waiting jobs (wait + prioritized + delayed) already
 * reach the limit. Returns the position: the plain waiting jobs, plus the prioritized ones of the
 * same or a more urgent priority — BullMQ scores a prioritized job `priority · 2³² + counter`, and
 * a new job gets a counter above every job already there, so these are exactly the ones ranked
 * ahead of it — plus one.
 */
export const QUEUE_SNAPSHOT = `
local limit = tonumber(ARGV[2])
local wait = redis.call('LLEN', KEYS[1])
if limit >= 0 then
  if wait + redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3]) >= limit then
    return redis.error_reply('QUEUE_FULL')
  end
end
local below = string.format('(%.0f', (tonumber(ARGV[1]) + 1) * 4294967296)
return wait + redis.call('ZCOUNT', KEYS[2], '-inf', below) + 1
`;

/** Each partition's sorted set of ended tasks, scored by end time (ms): retention reads it. */
export const ENDED_TASKS_PARTS = ['ended_tasks'] as const;

/**
 * Stream of webhook events written by a terminal move (the outbox, one per partition), relayed by
 * @app/webhooks. The move also publishes on a channel of the stream's name, so a relay reads it
 * at once.
 */
export const WEBHOOK_OUTBOX_PARTS = ['webhooks', 'outbox'] as const;

/**
 * The one implementation of a status change, shared by MOVE_TASK and CLAIM_RUN (appended to
 * COMMON). `apply_transition` writes `flat` (field/value pairs, status and updated_at among
 * them) and deletes `del` on the task hash `tk`, moves the task between the status indexes,
 * keeps its project's counters, and on a terminal move of a task with a callback_url writes the
 * webhook event to the outbox stream and sets its `webhook` state to pending (in the same atomic
 * step, so no event is lost between the move and its delivery queue; the event snapshots the
 * outcome). A move into a terminal status adds the task to its partition's `ended_tasks` at
 * `now_ms`; a move out of one (manual retry) takes it out. The progress hash `pk` expires on a
 * terminal status and is cleared when a run starts or the task is queued again.
 */
const APPLY_TRANSITION = `
local function apply_transition(tk, pk, pid, ttype, score, from, to, now, flat, del, now_ms)
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
    if terminal(to) then
      redis.call('ZADD', k('ended_tasks'), now_ms, id)
    elseif terminal(from) then
      redis.call('ZREM', k('ended_tasks'), id)
    end
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
      redis.call('PUBLISH', k('webhooks', 'outbox'), id)
    end
  end
  if terminal(to) then
    redis.call('EXPIRE', pk, 3600)
  elseif from ~= to and (to == 'processing' or to == 'queued') then
    redis.call('DEL', pk)
  end
end
`;

/**
 * One named move (task-moves.ts) of a task. KEYS: task hash, progress hash. ARGV: the
 * partition's key prefix, move name, allowed-from (comma list), to ('' = the status stays),
 * now_iso, required run id ('' = any), operation token, JSON object of fields to set, JSON array
 * of fields to delete, now in ms (the end time a terminal move records).
 * Returns the status the task left; error replies NOT_FOUND, ILLEGAL <status>, STALE_RUN.
 * A second run with the token of the last move answers that move's result again.
 */
export const MOVE_TASK = `${COMMON}${APPLY_TRANSITION}
local allowed, to, now, run, op = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local cur = redis.call('HMGET', KEYS[1], 'status', 'project_id', 'task_type', 'created_ms', 'run_id',
  'last_op', 'last_op_from')
local from, pid, ttype, score = cur[1], cur[2], cur[3], cur[4]
if not from then return redis.error_reply('NOT_FOUND') end
if op ~= '' and cur[6] == op then return cur[7] end
if not contains(allowed, from) then return redis.error_reply('ILLEGAL ' .. from) end
if run ~= '' and cur[5] ~= run then return redis.error_reply('STALE_RUN') end
if to == '' then to = from end
local flat = {'status', to, 'updated_at', now, 'last_op', op, 'last_op_from', from}
for f, v in pairs(cjson.decode(ARGV[8])) do flat[#flat + 1] = f; flat[#flat + 1] = v end
apply_transition(KEYS[1], KEYS[2], pid, ttype, score, from, to, now, flat, cjson.decode(ARGV[9]),
  ARGV[10])
return from
`;

/**
 * claimRun: a worker picking up a task's job, in one step. When the record belongs to that job
 * and is queued — or processing: a run of a lost worker is taken over — it moves to
 * `processing` under a new run id `<job id>#<run number>` (run numbers never repeat).
 * A takeover of a run this process itself lost (its lock lapsed, ARGV own-lost list) charges no
 * attempt; a takeover of another worker's run counts one more lost run and an attempt, and once
 * more runs were lost than allowed the task is failed instead (`exhausted`).
 * KEYS: task hash, progress hash. ARGV: prefix, job id, now_iso, JSON object of further fields
 * to set, operation token (BullMQ's lock token of this fetch), comma list of run ids this
 * process lost, the most lost runs allowed, now in ms. Returns {outcome, previous status, previous run id,
 * field, value, ...} where the fields are the whole record after the step (none when missing).
 * Outcomes: `missing` (no record), `superseded` (the record belongs to another job: a manual
 * retry made a new one), `illegal` (neither queued nor processing), `exhausted`, `started`.
 */
export const CLAIM_RUN = `${COMMON}${APPLY_TRANSITION}
local job, now, op, own_lost, max_lost = ARGV[2], ARGV[3], ARGV[5], ARGV[6], tonumber(ARGV[7])
local now_ms = ARGV[8]
local cur = redis.call('HMGET', KEYS[1], 'status', 'project_id', 'task_type', 'created_ms', 'run_id',
  'job_id', 'attempts', 'last_op', 'last_op_from', 'lost_runs', 'run_seq', 'last_op_run')
local from = cur[1]
if not from then return {'missing', '', ''} end
local outcome = 'started'
local prev_from, prev_run = from, cur[5] or ''
if cur[8] == op then
  -- the same fetch claiming again (a re-sent command): answer as the first claim did
  prev_from, prev_run = cur[9] or '', cur[12] or ''
  if from ~= 'processing' then outcome = 'exhausted' end
elseif cur[6] ~= job then
  outcome = 'superseded'
elseif not pending(from) then
  outcome = 'illegal'
else
  local attempts = tonumber(cur[7]) or 0
  local lost = tonumber(cur[10]) or 0
  local charged = true
  if from == 'processing' then
    if contains(own_lost, cur[5]) then charged = false else lost = lost + 1 end
  end
  if charged and lost > max_lost then
    outcome = 'exhausted'
    local message = 'the worker running this task was lost ' .. lost .. ' times (killed, or its ' ..
      'event loop blocked past the job lock); giving up'
    apply_transition(KEYS[1], KEYS[2], cur[2], cur[3], cur[4], from, 'failed', now,
      {'status', 'failed', 'updated_at', now, 'error', message, 'completed_at', now,
       'lost_runs', tostring(lost), 'last_op', op, 'last_op_from', from, 'last_op_run', prev_run},
      {'run_id'}, now_ms)
  else
    if charged then attempts = attempts + 1 end
    local seq = (tonumber(cur[11]) or 0) + 1
    local flat = {'status', 'processing', 'updated_at', now, 'attempts', tostring(attempts),
      'run_id', job .. '#' .. seq, 'run_seq', tostring(seq), 'lost_runs', tostring(lost),
      'last_op', op, 'last_op_from', from, 'last_op_run', prev_run}
    for f, v in pairs(cjson.decode(ARGV[4])) do flat[#flat + 1] = f; flat[#flat + 1] = v end
    apply_transition(KEYS[1], KEYS[2], cur[2], cur[3], cur[4], from, 'processing', now, flat, {},
      now_ms)
    -- A takeover stays processing, so apply_transition kept the lost run's progress: clear it.
    if from == 'processing' then redis.call('DEL', KEYS[2]) end
  end
end
local out = {outcome, prev_from, prev_run}
local h = redis.call('HGETALL', KEYS[1])
for i = 1, #h do out[#out + 1] = h[i] end
return out
`;

/**
 * Task retention: removes one ended task whose end (its score in `ended_tasks`) is at or before
 * the cutoff, with everything of it in its partition: the hash, the progress hash, its entries in
 * every project index, its `ended_tasks` entry, its Idempotency-Key entry (named in the hash
 * after the partition prefix, so in this slot; only while it still names this task), and one
 * from its project's `task_count`.
 * The status and the end are read again here, in the same step: a task a manual retry queued
 * again, or that ended again since the sweeper read the index, stays.
 * KEYS: task hash, progress hash. ARGV: prefix, cutoff ms. Returns {'removed', project_id, queue,
 * job_id, result JSON} or {outcome}: `gone` (no record; a stale entry is dropped), `pending`
 * (queued or processing; a stale entry is dropped), `young` (ended after the cutoff).
 * Run twice, the second run finds it gone.
 */
export const SWEEP_TASK = `${COMMON}
local id = string.sub(KEYS[1], #k('tasks') + 2)
local cur = redis.call('HMGET', KEYS[1], 'status', 'project_id', 'task_type', 'queue', 'job_id',
  'result', 'idempotency_key')
local status, pid, ttype = cur[1], cur[2], cur[3]
if not status then
  redis.call('ZREM', k('ended_tasks'), id)
  return {'gone'}
end
if not terminal(status) then
  redis.call('ZREM', k('ended_tasks'), id)
  return {'pending'}
end
local ended = redis.call('ZSCORE', k('ended_tasks'), id)
if not ended or tonumber(ended) > tonumber(ARGV[2]) then return {'young'} end
redis.call('ZREM', k('tasks', 'by_project', pid), id)
redis.call('ZREM', k('tasks', 'by_project', pid, 'type', ttype), id)
for _, s in ipairs({'queued', 'processing', 'completed', 'failed', 'cancelled'}) do
  index_status(pid, ttype, s, id, 0, false)
end
if cur[7] then
  local key = k(cur[7])
  local ok, entry = pcall(cjson.decode, redis.call('GET', key) or '')
  if ok and type(entry) == 'table' and entry.task_id == id then redis.call('DEL', key) end
end
local proj = k('projects', pid)
if (tonumber(redis.call('HGET', proj, 'task_count')) or 0) > 0 then
  redis.call('HINCRBY', proj, 'task_count', -1)
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', k('ended_tasks'), id)
return {'removed', pid, cur[4] or '', cur[5] or '', cur[6] or ''}
`;

/**
 * Media retention of one ended task: while it is still ended, ended at or before the cutoff, and
 * has a result whose output is not yet marked deleted, marks it (`media_deleted_at`, which makes
 * `result.media_url` null) before the caller deletes the object, so that a record never points
 * at deleted media unmarked. KEYS: task hash. ARGV: prefix, cutoff ms, now_iso. Returns
 * {'expired', project_id, result JSON} or {outcome}: `gone`, `pending`, `young`, `none` (no
 * output, or already marked).
 */
export const EXPIRE_MEDIA = `${COMMON}
local id = string.sub(KEYS[1], #k('tasks') + 2)
local cur = redis.call('HMGET', KEYS[1], 'status', 'project_id', 'result', 'media_deleted_at')
if not cur[1] then return {'gone'} end
if not terminal(cur[1]) then return {'pending'} end
local ended = redis.call('ZSCORE', k('ended_tasks'), id)
if not ended or tonumber(ended) > tonumber(ARGV[2]) then return {'young'} end
if not cur[3] or cur[3] == '' or cur[4] then return {'none'} end
redis.call('HSET', KEYS[1], 'media_deleted_at', ARGV[3])
return {'expired', cur[2], cur[3]}
`;

/**
 * reportProgress. KEYS: task hash, progress hash. ARGV: prefix, run id, fraction, step, now_iso.
 * Progress only moves forward, and only the current run may write it. Returns {status,
 * progress}, status `superseded` when the task is processing under another run, so a run
 * learns on its next report that it was cancelled or taken over. Idempotent by nature.
 */
export const REPORT_PROGRESS = `${COMMON}
local run, fraction, step, now = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local cur = redis.call('HMGET', KEYS[1], 'status', 'run_id', 'progress', 'current_step')
if cur[1] == 'processing' and cur[2] ~= run then return {'superseded', cur[3] or '0'} end
if cur[1] ~= 'processing' then return {cur[1] or '', cur[3] or '0'} end
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
 * recordWebhookOutcome. KEYS: task hash. ARGV: webhook id, JSON patch of the state, operation
 * token of the attempt. Counts one attempt and merges the patch into the task's `webhook`
 * field, only while that field still describes this event and is pending: a task hash that is
 * gone is never recreated, a newer event (after a manual retry) or a finished delivery is never
 * overwritten by a late attempt. The same attempt recorded twice counts once. Returns 1 when
 * written (or already written by this attempt).
 */
export const RECORD_WEBHOOK_OUTCOME = `
local raw = redis.call('HGET', KEYS[1], 'webhook')
if not raw then return 0 end
local w = cjson.decode(raw)
if w.id ~= ARGV[1] then return 0 end
if ARGV[3] ~= '' and w.op == ARGV[3] then return 1 end
if w.state ~= 'pending' then return 0 end
for f, v in pairs(cjson.decode(ARGV[2])) do w[f] = v end
w.attempts = (tonumber(w.attempts) or 0) + 1
w.op = ARGV[3]
redis.call('HSET', KEYS[1], 'webhook', cjson.encode(w))
return 1
`;
