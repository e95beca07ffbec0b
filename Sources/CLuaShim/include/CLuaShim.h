/*
 * The sandbox's C half. Everything that can raise a Lua error (and so longjmp) lives here, so
 * no Swift frame ever sits between a lua_pcall and the error that unwinds to it: the count
 * hook, the capped allocator, and the replacement library functions. Swift calls only the
 * functions below, which never raise.
 */
#ifndef CLUA_SHIM_H
#define CLUA_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

/* Why the last protected call was stopped by the sandbox rather than by the script. */
typedef enum {
    TSB_ABORT_NONE = 0,
    TSB_ABORT_BUDGET = 1,
    TSB_ABORT_DEADLINE = 2,
    TSB_ABORT_MEMORY = 3,
    /* The call returned, but after its deadline (time spent in C or in the collection after it). */
    TSB_ABORT_LATE = 4,
} tsb_abort_reason;

/* Creates a sandboxed state: safe libraries only, capped memory, captured print. NULL on OOM. */
lua_State *tsb_open(size_t memory_limit, size_t log_limit_bytes);

/* Closes a state made by tsb_open and frees its sandbox bookkeeping. */
void tsb_close(lua_State *L);

/* Loads a text chunk (never bytecode) named `name`; pushes the function or an error message. */
int tsb_load(lua_State *L, const char *source, size_t length, const char *name);

/*
 * lua_pcall under the sandbox: the memory cap is enforced, the hook (on instruction counts and
 * on every call, C functions included) stops the call after `instruction_budget` instructions
 * (a call costs a few) or at `deadline_ns` (CLOCK_MONOTONIC), and an error value that is not a
 * string is turned into a message. A full collection runs after the call when the VM holds over
 * half its cap, before the deadline is checked once more: a call that returns late is reported
 * by tsb_last_abort as TSB_ABORT_LATE. The runners below start and judge each call they make
 * this way themselves, so a run is never judged as one call. Returns the lua_pcall status.
 */
int tsb_pcall(lua_State *L, int nargs, int nresults, int64_t instruction_budget, int64_t deadline_ns);

/* Why the last tsb_pcall was aborted by the sandbox (TSB_ABORT_NONE for a script's own error).
   A budget or deadline stop is reported even when the script caught the error (with pcall or
   coroutine.resume) and returned normally: the call still ran out of its limits. */
tsb_abort_reason tsb_last_abort(lua_State *L);

/* Bytes currently allocated by the state. */
size_t tsb_memory_in_use(lua_State *L);

/* The captured print output since the last call, lines separated by '\n'; `dropped` counts
   lines that did not fit. The pointer is valid until the next sandbox call. */
const char *tsb_take_log(lua_State *L, size_t *length, size_t *dropped);

/* Registers the source of a module that `require(name)` may load. Never raises. */
int tsb_register_module(lua_State *L, const char *name, const char *source, size_t length);

/* Monotonic clock in nanoseconds, for deadlines. */
int64_t tsb_now_ns(void);

/*
 * Flat records: tables with a fixed set of string keys, written and read in one call each
 * instead of one API call (and one C-string key lookup) per field. A layout interns the field
 * names once, as an array in the registry; it returns the registry reference (LUA_NOREF when
 * out of memory).
 */
int tsb_record_layout(lua_State *L, const char *const *names, int count);

/* Replaces the top `count` values (one per layout field, in order; nil for an absent field)
   by a new table holding them. */
void tsb_make_record(lua_State *L, int layout, int count);

/* The fields of `ctx` rewritten before each call (tenant, device, now, now_iso, config). */
#define TSB_CONTEXT_FIELDS 5

/* Pushes the C function that runs an alert rule over one device's samples in one protected
   call (tsb_pcall), instead of one host call per sample. Its arguments: the rule's `evaluate`;
   an array of sample tables; the state; the `ctx`
   table and its TSB_CONTEXT_FIELDS values (rewritten before each call, raw) and their layout
   (tsb_record_layout); the nanoseconds left of the rule's share; the wall clock of one call
   in nanoseconds; the instruction budget of one call; the most entries an answer may have;
   the longest key in bytes; and the function that makes each call's fresh copy of its
   sample's table from the array's element (nil hands out the tables themselves, for a rule
   that only reads them or the one rule that runs over them). Each call
   gets the budget, and a deadline of the wall clock or
   the share's end, whichever is first, as a call of its own would. It returns the last state,
   then the steps: a copy of the alerts after each sample whose keys differ from the step
   before (a sample with the same keys replaces that step). Any answer it does not take exactly
   as the host's reader would (a fault, an unusual key, many alerts) raises an error: the host
   then runs the rule its slower way. */
void tsb_push_alert_runner(lua_State *L);

/* One telemetry sample of a transform run (tsb_push_transform_runner). The host fills the
   input; the runner overwrites the fields a transform may change with what it returned. Mode
   and output are indexes into the runner's lists of their names. */
typedef struct {
    double time;
    const char *timestamp;
    size_t timestamp_length;
    double temp_inside;
    double temp_outside;
    double setpoint;
    double hysteresis;
    int mode;
    int output;
    int has_temp_outside;
} tsb_sample;

/* How a transform run ended (tsb_sample_batch.ended). */
typedef enum {
    /* Every sample's answer was taken. */
    TSB_RUN_FINISHED = 0,
    /* The answer for sample `next` is not one the runner takes (a rejection, a wrong shape, a
       value out of range): it is the runner's result, for the host to read. */
    TSB_RUN_ANSWER = 1,
    /* The batch's deadline passed before sample `next` started. */
    TSB_RUN_OUT_OF_TIME = 2,
} tsb_run_end;

/* The samples of one transform run and what the runner reports back. */
typedef struct {
    tsb_sample *samples;
    int count;
    /* Out: the first sample whose answer was not taken (count when all were); also set while a
       call runs, so that an error raised there names its sample. */
    int next;
    tsb_run_end ended;
    /* The ranges the runner accepts, as the host validates ingest input. */
    double temperature_min, temperature_max;
    double setpoint_min, setpoint_max;
    double hysteresis_min, hysteresis_max;
} tsb_sample_batch;

/* Pushes the C function that runs an ingest transform over consecutive samples of one device
   in one protected call (tsb_pcall). Its arguments: `transform`; the `ctx` table and its
   TSB_CONTEXT_FIELDS values and their layout; the layouts of the sample table (device_id,
   timestamp, time, mode, temp_inside_c, temp_outside_c, setpoint_c, hysteresis_c, output), of
   the fields read back (mode, output, temp_inside_c, temp_outside_c, setpoint_c,
   hysteresis_c), of the mode names and of the output names; the batch (light userdata,
   tsb_sample_batch); the device's serial; the wall clock of one call in nanoseconds; the
   instruction budget of one call; and the batch's deadline (tsb_now_ns). Each call gets a
   fresh sample table and `ctx` with its fields rewritten (both built outside the memory cap,
   as the host builds them), the budget and a deadline of its own, and is ended as tsb_pcall
   ends a call (the collection, the late check). The only difference a script can see is one
   more C call level under it. The runner stops at the first answer it does not take exactly
   as the host's reader would accept it, returning that call's two results; otherwise it
   returns nothing. A script error, or a call that ran out of its limits, ends the protected
   call as it would end a call of its own. */
void tsb_push_transform_runner(lua_State *L);

/* Pops the top `count` values (one per layout field, in order; nil clears a field) into the
   table at `table_index` (which must lie below them), without metamethods. */
void tsb_fill_record(lua_State *L, int table_index, int layout, int count);

/* One field read by tsb_read_record: its Lua type, and its number or string (the string stays
   valid while the table it came from stays on the stack). */
typedef struct {
    int type;
    double number;
    const char *string;
    size_t length;
} tsb_field;

/* Reads the layout's first `count` fields of the table at `table_index` without metamethods. */
void tsb_read_record(lua_State *L, int table_index, int layout, int count, tsb_field *fields);

/* Starts (on != 0) or stops recording the names scripts pass to require. Starting clears
   the record. */
void tsb_trace_requires(lua_State *L, int on);

/* How many names the record holds (each once, in the order of their first require), and
   name `index` (0-based). The name
   stays valid while tracing is on (the record holds it). */
int tsb_required_count(lua_State *L);
const char *tsb_required_name(lua_State *L, int index, size_t *length);

/* A full garbage collection (no finalizers run: the sandbox refuses __gc). */
void tsb_collect_garbage(lua_State *L);

/* Wrappers for Lua macros that Swift cannot import. */
int tsb_registry_index(void);
void tsb_pop(lua_State *L, int n);
const char *tsb_tostring(lua_State *L, int index, size_t *length);

#endif
