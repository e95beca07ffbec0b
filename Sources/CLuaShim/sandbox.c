#define _POSIX_C_SOURCE 200809L
#include "CLuaShim.h"

#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Instructions between two runs of the count hook: small enough that a few slow instructions
   (copying megabyte strings) cannot overshoot the deadline by much. */
#define HOOK_STEP 100
/* Budget charged for every function call, C functions included. The hook also runs on calls
   (LUA_MASKCALL) so that C loops driving metamethods or callbacks (`__index = table.concat`)
   pay for each call and see the deadline, where the count hook alone never runs. */
#define CALL_COST 8
#define HOOK_MASK (LUA_MASKCOUNT | LUA_MASKCALL)
/* Nested pattern calls (gsub callbacks calling gsub …) each take C stack. */
#define MAX_PATTERN_NESTING 16
/* Upper bounds for C library loops the count hook cannot see. */
#define MAX_REP_COUNT 1000000
#define MAX_MOVE_COUNT 1000000
/* table.sort compares n log n times in C (strcoll for strings): 250 000 strings took 430 ms. */
#define MAX_SORT_COUNT 100000
#define MAX_PATTERN_LENGTH 256
#define MAX_PATTERN_COST 1e7
#define MAX_LOG_LINE 1024
/* How many tables a table.* function may meet following __index or __newindex from its table:
   each element it reads or writes walks that chain in C. */
#define MAX_TABLE_CHAIN 16
/* Text the script itself compiles with load() and formats with os.date(). */
#define MAX_LOAD_LENGTH (1024 * 1024)
#define MAX_DATE_FORMAT 256

/* The small-block pool (see tsb_alloc): blocks up to POOL_LARGEST bytes, in classes POOL_STEP
   bytes apart (which keeps every block aligned as malloc's are), carved from one region of
   POOL_REGION bytes per VM. A worker holds up to 64 VMs: their regions take at most 128 MiB of
   its address space, and only the pages a VM has used count as memory. */
#define POOL_STEP 16
#define POOL_LARGEST 512
#define POOL_CLASSES (POOL_LARGEST / POOL_STEP)
#define POOL_REGION (2 * 1024 * 1024)

struct pool_free {
    struct pool_free *next;
};

static const char *const SOURCES_KEY = "tsb.sources";
static const char *const LOADED_KEY = "tsb.loaded";
/* While tsb_trace_requires is on: the names passed to require, in the order of their first
   call (as an array), and each name as a key, so a name is recorded once. */
static const char *const REQUIRED_KEY = "tsb.required";

typedef struct {
    size_t used;
    size_t limit;
    int enforce;
    int64_t budget_left;
    int64_t deadline_ns;
    tsb_abort_reason abort;
    char *log;
    size_t log_length;
    size_t log_limit;
    size_t log_dropped;
    size_t log_taken;
    int pattern_nesting;
    /* Set by a runner that ended and judged each of its calls itself (see start_call). */
    int calls_judged;
    /* The small-block pool (see tsb_alloc): a free list per size class, the region (NULL when
       it could not be allocated: then every block is malloc's) and how far it has been carved. */
    struct pool_free *free_blocks[POOL_CLASSES];
    char *region;
    size_t carved;
} tsb_state;

static tsb_state *state_of(lua_State *L) {
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return (tsb_state *)ud;
}

static int load_text(lua_State *L, const char *source, size_t length, const char *name);

int64_t tsb_now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

/* The same clock read for the checks the hook makes on every call: the coarse variant costs a
   fraction of the precise one and lags it by at most a scheduler tick (a few milliseconds),
   which only makes a deadline fire that much later. */
static int64_t coarse_now_ns(void) {
#ifdef CLOCK_MONOTONIC_COARSE
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
#else
    return tsb_now_ns();
#endif
}

static size_t pool_class(size_t size) { return (size - 1) / POOL_STEP; }

static int in_pool(const tsb_state *s, const void *block) {
    return s->region != NULL && (const char *)block >= s->region && (const char *)block < s->region + POOL_REGION;
}

/* A block for `size` bytes (at most POOL_LARGEST) from its class's free list, else carved from
   the region, else (the region used up, or never allocated) from malloc, as large as its class
   so that it can be resized within the class in place like the others. */
static void *pool_take(tsb_state *s, size_t size) {
    size_t class = pool_class(size);
    struct pool_free *block = s->free_blocks[class];
    if (block != NULL) {
        s->free_blocks[class] = block->next;
        return block;
    }
    size_t bytes = (class + 1) * POOL_STEP;
    if (s->region != NULL && POOL_REGION - s->carved >= bytes) {
        void *carved = s->region + s->carved;
        s->carved += bytes;
        return carved;
    }
    return malloc(bytes);
}

/* Takes back a block Lua says holds `size` bytes: onto its class's free list when it lies in
   the region, to malloc otherwise. */
static void give_back(tsb_state *s, void *block, size_t size) {
    if (size > POOL_LARGEST || !in_pool(s, block)) {
        free(block);
        return;
    }
    struct pool_free *freed = block;
    size_t class = pool_class(size);
    freed->next = s->free_blocks[class];
    s->free_blocks[class] = freed;
}

/* The allocator: counts every byte and, only while a sandboxed call runs (where Lua turns a
   refusal into a catchable memory error), refuses to grow past the cap.

   Small blocks come from the VM's own pool. Lua makes and, through its collector, frees a great
   many small blocks of a few sizes (tables and their parts, strings, closures): an alert rule
   run over a sample copies the sample's table and gets a new answer table back. malloc served
   them through its slower paths (about a tenth of a worker's time in a profile of the alert
   rules); a free list takes a few instructions. Lua passes every block's size back when it
   frees or resizes it, so a block's size and address say where it belongs and no block needs
   a header. The region is bounded, so a script that churns through every size class costs at
   most the region beyond what malloc would hold, and blocks past it are malloc's as before. */
static void *tsb_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    tsb_state *s = (tsb_state *)ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        give_back(s, ptr, old);
        s->used -= old;
        return NULL;
    }
    if (s->enforce && nsize > old && s->used - old + nsize > s->limit) {
        s->abort = TSB_ABORT_MEMORY;
        return NULL;
    }
    void *block;
    if (old > POOL_LARGEST && nsize > POOL_LARGEST) {
        block = realloc(ptr, nsize);
        if (block == NULL) return NULL;
    } else if (ptr != NULL && old <= POOL_LARGEST && nsize <= POOL_LARGEST && pool_class(old) == pool_class(nsize)) {
        block = ptr;
    } else {
        block = nsize <= POOL_LARGEST ? pool_take(s, nsize) : malloc(nsize);
        if (block == NULL) {
            /* Lua counts on a shrink never failing. This one (a large block becoming a small one)
               found no memory for the small block: the large one, outside the region, serves as
               it and goes back to malloc when freed. */
            if (nsize < old) {
                s->used = s->used - old + nsize;
                return ptr;
            }
            return NULL;
        }
        if (ptr != NULL) {
            memcpy(block, ptr, old < nsize ? old : nsize);
            give_back(s, ptr, old);
        }
    }
    s->used = s->used - old + nsize;
    return block;
}

static int tsb_panic(lua_State *L) {
    const char *message = lua_tostring(L, -1);
    fprintf(stderr, "lua sandbox: unprotected error: %s\n", message ? message : "(not a string)");
    abort();
    return 0;
}

/* Raises `message` prefixed with the chunk and line of the innermost running Lua function.
   Inside a hook, luaL_error would name the caller instead (level 1), so start at level 0; on a
   call event level 0 may be a C function, with no line: look further out. */
static int raise_here(lua_State *L, const char *message) {
    lua_Debug ar;
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, message);
            return lua_error(L);
        }
    }
    lua_pushstring(L, message);
    return lua_error(L);
}

static int tsb_message_handler(lua_State *L);
static void tsb_hook(lua_State *L, lua_Debug *ar);

/* Whether a call event is one the sandbox lets start even when the call is over its limits:
   - the sandbox's own message handler, which Lua calls while it raises an error (raising again
     there would only turn the error into "error in error handling");
   - a function called from no Lua or C function at all: the host's call itself, or a __close
     handler (Lua's own, such as lauxlib's buffer box, or the script's) that Lua runs while it
     unwinds the whole call; raising there would replace the error that is already on its way.
   Both are bounded on their own: whatever they call, and whatever Lua code they run, is still
   stopped by the hook. */
static int exempt_call(lua_State *L, lua_Debug *ar) {
    lua_Debug caller;
    if (!lua_getstack(L, 1, &caller)) return 1;
    if (!lua_getinfo(L, "f", ar)) return 0;
    int handler = lua_tocfunction(L, -1) == tsb_message_handler;
    lua_pop(L, 1);
    return handler;
}

static void abort_call(lua_State *L, lua_Debug *ar, tsb_abort_reason reason, const char *message) {
    if (ar->event != LUA_HOOKCOUNT && exempt_call(L, ar)) return;
    state_of(L)->abort = reason;
    /* From now on every instruction and call of this thread raises again, so handlers that
       catch the error (pcall, __close) cannot go on for long. */
    lua_sethook(L, tsb_hook, HOOK_MASK, 1);
    raise_here(L, message);
}

static void tsb_hook(lua_State *L, lua_Debug *ar) {
    tsb_state *s = state_of(L);
    /* The host's own protected calls (registering modules, layouts) run outside any budget. */
    if (!s->enforce) return;
    if (ar->event == LUA_HOOKCOUNT) {
        /* A coroutine keeps the hook it was given, which after an earlier abort runs on every
           instruction: charge what actually ran, and give it the normal step back. */
        int step = lua_gethookcount(L);
        s->budget_left -= step;
        if (step != HOOK_STEP && s->budget_left >= 0) lua_sethook(L, tsb_hook, HOOK_MASK, HOOK_STEP);
    } else {
        s->budget_left -= CALL_COST;
    }
    if (s->budget_left < 0) abort_call(L, ar, TSB_ABORT_BUDGET, "instruction budget exhausted");
    if (coarse_now_ns() > s->deadline_ns) abort_call(L, ar, TSB_ABORT_DEADLINE, "time limit exceeded");
}

/* Message handler: any error value becomes a string message. */
static int tsb_message_handler(lua_State *L) {
    if (lua_type(L, 1) == LUA_TSTRING) return 1;
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_pushliteral(L, "message");
        if (lua_rawget(L, 1) == LUA_TSTRING) return 1;
        lua_pop(L, 1);
    }
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    return 1;
}

/* ---- replacement library functions ---- */

static int tsb_print(lua_State *L) {
    tsb_state *s = state_of(L);
    int n = lua_gettop(L);
    luaL_Buffer line;
    luaL_buffinit(L, &line);
    for (int i = 1; i <= n; i++) {
        size_t length;
        const char *text = luaL_tolstring(L, i, &length);
        if (i > 1) luaL_addchar(&line, '\t');
        luaL_addlstring(&line, text, length);
        lua_pop(L, 1);
    }
    luaL_pushresult(&line);
    size_t length;
    const char *text = lua_tolstring(L, -1, &length);
    if (length > MAX_LOG_LINE) length = MAX_LOG_LINE;
    if (s->log_length + length + 1 > s->log_limit) {
        s->log_dropped++;
        return 0;
    }
    memcpy(s->log + s->log_length, text, length);
    s->log_length += length;
    s->log[s->log_length++] = '\n';
    return 0;
}

static int tsb_collectgarbage(lua_State *L) {
    const char *option = luaL_optstring(L, 1, "count");
    if (strcmp(option, "count") != 0) return luaL_error(L, "collectgarbage: only \"count\" is allowed");
    lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT) + (lua_Number)lua_gc(L, LUA_GCCOUNTB) / 1024);
    return 1;
}

/* load(text [, name [, mode [, env]]]): text chunks only (a reader function would be called in a
   C loop), of bounded size (compiling runs in C too). */
static int tsb_load_function(lua_State *L) {
    size_t length;
    const char *source = luaL_checklstring(L, 1, &length);
    if (length > MAX_LOAD_LENGTH) return luaL_error(L, "load: chunk longer than %d bytes", MAX_LOAD_LENGTH);
    const char *name = luaL_optstring(L, 2, "=(load)");
    int has_env = !lua_isnone(L, 4);
    if (load_text(L, source, length, name) == LUA_OK) {
        if (has_env) {
            lua_pushvalue(L, 4);
            if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
        }
        return 1;
    }
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
}

static int tsb_setmetatable(lua_State *L) {
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL) return luaL_error(L, "__gc metamethods are not allowed in the sandbox");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int tsb_require(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    if (lua_getfield(L, LUA_REGISTRYINDEX, REQUIRED_KEY) == LUA_TTABLE) {
        lua_pushvalue(L, 1);
        if (lua_rawget(L, -2) == LUA_TNIL) {
            lua_pushvalue(L, 1);
            lua_pushboolean(L, 1);
            lua_rawset(L, -4);
            lua_pushvalue(L, 1);
            lua_rawseti(L, -3, (lua_Integer)lua_rawlen(L, -3) + 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, LOADED_KEY);
    if (lua_getfield(L, -1, name) != LUA_TNIL) {
        if (lua_type(L, -1) == LUA_TLIGHTUSERDATA) return luaL_error(L, "module '%s' requires itself", name);
        return 1;
    }
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, SOURCES_KEY);
    if (lua_getfield(L, -1, name) != LUA_TSTRING) {
        return luaL_error(L, "module '%s' is not available (only built-in plugins can be required)", name);
    }
    size_t length;
    const char *source = lua_tolstring(L, -1, &length);
    lua_pushlightuserdata(L, (void *)LOADED_KEY);
    lua_setfield(L, -4, name);
    lua_pushfstring(L, "=%s", name);
    /* A module that fails to load or run must not stay marked as loading, or every later
       require of it in this VM would report that it requires itself. */
    if (load_text(L, source, length, lua_tostring(L, -1)) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        lua_pushnil(L);
        lua_setfield(L, 2, name);
        return lua_error(L);
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -6, name);
    return 1;
}

static int tsb_string_rep(lua_State *L) {
    size_t length, separator_length = 0;
    luaL_checklstring(L, 1, &length);
    lua_Integer count = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &separator_length);
    if (count > MAX_REP_COUNT) return luaL_error(L, "string.rep: count %I is over the sandbox limit", count);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* Backtracking pattern matching runs in C, where the count hook cannot stop it, so each call's
   worst case is bounded before it starts. A match is tried at each of the subject's n + 1
   positions. Within a try, an item followed by a quantifier (`*`, `+`, `-`, `?`) can be retried
   with every length of the rest of the subject, so every item after it may be tried n + 1 times
   more often; a balance `%b` and a back-reference `%1`-`%9` are tried once but scan up to n bytes.
   So an item costs (its scan) * (n + 1) ^ (quantifiers up to and including its own), a try costs
   the sum over the items, and the call (n + 1) tries. Measured on a release build here, '.-b' on
   5000 bytes (a cost of 5e7) took 180 ms, and 110 ms at a cost of 2e7 on a loaded machine: the
   bound keeps one call to a few tens of milliseconds, well inside the wall-clock limit. */
static double pattern_cost(const char *pattern, size_t length, size_t subject_length) {
    double positions = (double)subject_length + 1;
    double factor = 1;
    double per_try = 0;
    for (size_t i = 0; i < length && per_try * positions <= MAX_PATTERN_COST; i++) {
        double scan = 1;
        char c = pattern[i];
        if (c == '%' && i + 1 < length) {
            i++;
            if (pattern[i] == 'b') {
                scan = positions;
                i += 2;
            } else if (pattern[i] >= '1' && pattern[i] <= '9') {
                scan = positions;
            } else if (pattern[i] == 'f') {
                continue; /* the frontier's [set] is the next item */
            }
        } else if (c == '[') {
            i++;
            if (i < length && pattern[i] == '^') i++;
            if (i < length && pattern[i] == ']') i++;
            while (i < length && pattern[i] != ']') {
                if (pattern[i] == '%') i++;
                i++;
            }
        }
        /* A quantifier after any item (or a stray one) multiplies what follows; where Lua would
           read it as a literal character instead, this only overestimates. */
        if (c == '*' || c == '+' || c == '-' || c == '?') {
            factor *= positions;
        } else if (i + 1 < length && strchr("*+-?", pattern[i + 1]) != NULL) {
            factor *= positions;
            i++;
        }
        per_try += scan * factor;
    }
    return per_try * positions;
}

static int tsb_checked_pattern(lua_State *L) {
    size_t subject_length, pattern_length;
    luaL_checklstring(L, 1, &subject_length);
    const char *pattern = luaL_checklstring(L, 2, &pattern_length);
    if (pattern_length > MAX_PATTERN_LENGTH) return luaL_error(L, "pattern longer than %d bytes", MAX_PATTERN_LENGTH);
    if (pattern_cost(pattern, pattern_length, subject_length) > MAX_PATTERN_COST) {
        return luaL_error(L, "pattern '%s' is too costly for a %I-byte subject (quantifiers, %%b and back-references multiply the work)",
                          pattern, (lua_Integer)subject_length);
    }
    tsb_state *s = state_of(L);
    if (s->pattern_nesting >= MAX_PATTERN_NESTING) return luaL_error(L, "pattern calls nested too deeply");
    s->pattern_nesting++;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    /* Protected, so that an error (which the script may catch) still ends this level. */
    int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    s->pattern_nesting--;
    if (status != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

/* ---- table.* : C loops over a range, one element read or written per step ----

   The library measures a length with __len and reads and writes elements through __index and
   __newindex, all inside C loops the count hook never sees. The wrappers make each loop's length
   known and bounded before it starts, and its steps cheap:
   - the length is measured once (a second __len could answer differently) and an explicit range
     is checked like a measured one;
   - __index and __newindex may lead to at most MAX_TABLE_CHAIN tables and never to a function,
     so a step never runs code (a function there could rewire the chain mid-loop) and never walks
     Lua's 2000-link chains. Class-style `__index = Class` tables keep working. */

/* Whether following `event` (__index or __newindex) from the value at `index` meets only a
   short chain of tables. */
static int plain_chain(lua_State *L, int index, const char *event) {
    lua_pushvalue(L, index);
    for (int depth = 0;; depth++) {
        if (!lua_getmetatable(L, -1)) break;
        lua_pushstring(L, event);
        int type = lua_rawget(L, -2);
        lua_replace(L, -3);
        lua_pop(L, 1);
        if (type == LUA_TNIL) break;
        if (type != LUA_TTABLE || depth >= MAX_TABLE_CHAIN) {
            lua_pop(L, 1);
            return 0;
        }
    }
    lua_pop(L, 1);
    return 1;
}

static void check_table(lua_State *L, int index, const char *function, int reads, int writes) {
    luaL_checktype(L, index, LUA_TTABLE);
    const char *event = NULL;
    if (reads && !plain_chain(L, index, "__index")) event = "__index";
    if (writes && !plain_chain(L, index, "__newindex")) event = "__newindex";
    if (event != NULL) {
        luaL_error(L, "table.%s: a table whose %s leads to a function or a long chain is not allowed in the sandbox",
                   function, event);
    }
}

static void check_range(lua_State *L, const char *function, lua_Integer first, lua_Integer last) {
    if (last >= first && (lua_Unsigned)last - (lua_Unsigned)first >= MAX_MOVE_COUNT) {
        luaL_error(L, "table.%s: range %I..%I is over the sandbox limit of %d elements", function, first, last, MAX_MOVE_COUNT);
    }
}

static int call_original(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* table.concat(t, sep, i, j) and table.unpack(t, i, j): the range, measured once, is handed to
   the library explicitly (upvalue 2: the argument index of i). */
static int tsb_table_range(lua_State *L) {
    int first_argument = (int)lua_tointeger(L, lua_upvalueindex(2));
    const char *function = first_argument == 3 ? "concat" : "unpack";
    check_table(L, 1, function, 1, 0);
    lua_Integer first = luaL_optinteger(L, first_argument, 1);
    lua_Integer last = lua_isnoneornil(L, first_argument + 1) ? luaL_len(L, 1) : luaL_checkinteger(L, first_argument + 1);
    check_range(L, function, first, last);
    lua_settop(L, first_argument + 1);
    lua_pushinteger(L, first);
    lua_replace(L, first_argument);
    lua_pushinteger(L, last);
    lua_replace(L, first_argument + 1);
    return call_original(L);
}

/* table.insert, table.remove and table.sort always measure the length themselves: refuse __len,
   so the raw length checked here is the one they get. */
static int tsb_table_length(lua_State *L) {
    const char *function = lua_tostring(L, lua_upvalueindex(2));
    check_table(L, 1, function, 1, 1);
    if (luaL_getmetafield(L, 1, "__len") != LUA_TNIL) {
        return luaL_error(L, "table.%s: tables with a __len metamethod are not allowed in the sandbox", function);
    }
    lua_Unsigned limit = strcmp(function, "sort") == 0 ? MAX_SORT_COUNT : MAX_MOVE_COUNT;
    if (lua_rawlen(L, 1) > limit) {
        return luaL_error(L, "table.%s: table length is over the sandbox limit of %I elements", function, (lua_Integer)limit);
    }
    return call_original(L);
}

static int tsb_table_move(lua_State *L) {
    check_table(L, 1, "move", 1, 0);
    lua_Integer first = luaL_checkinteger(L, 2);
    lua_Integer last = luaL_checkinteger(L, 3);
    check_range(L, "move", first, last);
    check_table(L, lua_isnoneornil(L, 5) ? 1 : 5, "move", 0, 1);
    return call_original(L);
}

/* xpcall's message handler runs while Lua handles the error, with hooks off: a handler that
   loops would never be stopped. This xpcall runs the handler after the error has unwound,
   as an ordinary call that the count hook sees. */
static int tsb_xpcall(lua_State *L) {
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 1);
    for (int i = 3; i <= n; i++) lua_pushvalue(L, i);
    int base = n + 1;
    if (lua_pcall(L, n - 2, LUA_MULTRET, 0) == LUA_OK) {
        lua_pushboolean(L, 1);
        lua_insert(L, base);
        return lua_gettop(L) - base + 1;
    }
    lua_pushvalue(L, 2);
    lua_insert(L, -2);
    lua_call(L, 1, 1);
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

/* ---- coroutines: to-be-closed variables of a thread that died of an error ----

   When the count hook raises inside a coroutine, Lua unwinds to lua_resume without restoring
   the thread's `allowhook` flag, which is 0 while a hook runs: that dead thread never runs a
   hook again. Lua's coroutine.close and coroutine.wrap's error path then call lua_resetthread on
   it, which runs the pending __close handlers with no hook at all, so a handler that loops is
   never stopped (and to-be-closed values need no `<close>` text: a generic for's fourth value is
   one). The sandbox's close and wrap never reset a thread that died of an error: its pending
   handlers are dropped, not run (the thread and its values are still collected). Suspended
   threads are closed by Lua as usual: their hooks are on. */

static int died_of_error(lua_State *co) {
    int status = lua_status(co);
    return status != LUA_OK && status != LUA_YIELD;
}

/* coroutine.close(co): a thread that died of an error answers false and its error, as Lua's
   does, without running its handlers. */
static int tsb_coroutine_close(lua_State *L) {
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co != NULL, 1, "coroutine");
    if (!died_of_error(co)) return call_original(L);
    lua_pushboolean(L, 0);
    if (lua_gettop(co) > 0 && lua_checkstack(co, 1)) {
        lua_pushvalue(co, -1);
        lua_xmove(co, L, 1);
    } else {
        lua_pushnil(L);
    }
    return 2;
}

/* The function coroutine.wrap returns: resumes its thread with Lua's coroutine.resume (which never
   resets a thread) and raises the thread's error with the caller's position, as Lua's does. */
static int tsb_wrapped_coroutine(lua_State *L) {
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int arguments = lua_gettop(L);
    luaL_checkstack(L, 2, "too many arguments to resume");
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 2);
    lua_call(L, arguments + 1, LUA_MULTRET);
    if (lua_toboolean(L, 1)) return lua_gettop(L) - 1;
    lua_settop(L, 2);
    if (lua_status(co) != LUA_ERRMEM && lua_type(L, 2) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

/* coroutine.wrap(f); upvalue 1 is Lua's coroutine.resume. */
static int tsb_coroutine_wrap(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, tsb_wrapped_coroutine, 2);
    return 1;
}

/* os.date runs strftime once per conversion of its format, in C. */
static int tsb_os_date(lua_State *L) {
    size_t length = 0;
    luaL_optlstring(L, 1, "%c", &length);
    if (length > MAX_DATE_FORMAT) return luaL_error(L, "os.date: format longer than %d bytes", MAX_DATE_FORMAT);
    return call_original(L);
}

/* The `<close>` attribute is refused as text too. It is no defence on its own (the text can be
   split by a comment or a newline, and a generic for's fourth value is a to-be-closed value
   without it); the coroutine functions above are. */
static int has_close_attribute(const char *source, size_t length) {
    for (size_t i = 0; i < length; i++) {
        if (source[i] != '<') continue;
        size_t j = i + 1;
        while (j < length && (source[j] == ' ' || source[j] == '\t')) j++;
        if (j + 5 <= length && memcmp(source + j, "close", 5) == 0) {
            j += 5;
            while (j < length && (source[j] == ' ' || source[j] == '\t')) j++;
            if (j < length && source[j] == '>') return 1;
        }
    }
    return 0;
}

static int load_text(lua_State *L, const char *source, size_t length, const char *name) {
    if (has_close_attribute(source, length)) {
        lua_pushfstring(L, "%s: the <close> attribute is not allowed in the sandbox", name[0] == '=' ? name + 1 : name);
        return LUA_ERRSYNTAX;
    }
    return luaL_loadbufferx(L, source, length, name, "t");
}

/* Replaces table[name] with `wrapper`, which gets the original as its upvalue. */
static void wrap_field(lua_State *L, int table, const char *name, lua_CFunction wrapper) {
    lua_getfield(L, table, name);
    lua_pushcclosure(L, wrapper, 1);
    lua_setfield(L, table, name);
}

static int open_sandbox(lua_State *L) {
    static const luaL_Reg libraries[] = {
        {LUA_GNAME, luaopen_base},        {LUA_TABLIBNAME, luaopen_table}, {LUA_STRLIBNAME, luaopen_string},
        {LUA_MATHLIBNAME, luaopen_math}, {LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_COLIBNAME, luaopen_coroutine},
        {NULL, NULL},
    };
    for (const luaL_Reg *library = libraries; library->func; library++) {
        luaL_requiref(L, library->name, library->func, 1);
        lua_pop(L, 1);
    }
    lua_pushglobaltable(L);
    int globals = lua_gettop(L);
    static const char *const removed[] = {"dofile", "loadfile", "warn", NULL};
    for (const char *const *name = removed; *name; name++) {
        lua_pushnil(L);
        lua_setfield(L, globals, *name);
    }
    lua_pushcfunction(L, tsb_print);
    lua_setfield(L, globals, "print");
    lua_pushcfunction(L, tsb_collectgarbage);
    lua_setfield(L, globals, "collectgarbage");
    lua_pushcfunction(L, tsb_load_function);
    lua_setfield(L, globals, "load");
    lua_pushcfunction(L, tsb_require);
    lua_setfield(L, globals, "require");
    wrap_field(L, globals, "setmetatable", tsb_setmetatable);
    lua_pushcfunction(L, tsb_xpcall);
    lua_setfield(L, globals, "xpcall");

    luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
    int full_os = lua_gettop(L);
    lua_createtable(L, 0, 3);
    static const char *const kept[] = {"time", "date", "clock", NULL};
    for (const char *const *name = kept; *name; name++) {
        lua_getfield(L, full_os, *name);
        lua_setfield(L, -2, *name);
    }
    wrap_field(L, lua_gettop(L), "date", tsb_os_date);
    lua_setfield(L, globals, "os");
    lua_pop(L, 1);

    lua_getglobal(L, "string");
    int string_table = lua_gettop(L);
    lua_pushnil(L);
    lua_setfield(L, string_table, "dump");
    wrap_field(L, string_table, "rep", tsb_string_rep);
    static const char *const patterns[] = {"find", "match", "gmatch", "gsub", NULL};
    for (const char *const *name = patterns; *name; name++) wrap_field(L, string_table, *name, tsb_checked_pattern);
    lua_pop(L, 1);

    lua_getglobal(L, "table");
    int table_library = lua_gettop(L);
    wrap_field(L, table_library, "move", tsb_table_move);
    static const struct {
        const char *name;
        int first_argument;
    } ranged[] = {{"concat", 3}, {"unpack", 2}};
    for (size_t i = 0; i < sizeof ranged / sizeof ranged[0]; i++) {
        lua_getfield(L, table_library, ranged[i].name);
        lua_pushinteger(L, ranged[i].first_argument);
        lua_pushcclosure(L, tsb_table_range, 2);
        lua_setfield(L, table_library, ranged[i].name);
    }
    static const char *const length_bound[] = {"insert", "remove", "sort", NULL};
    for (const char *const *name = length_bound; *name; name++) {
        lua_getfield(L, table_library, *name);
        lua_pushstring(L, *name);
        lua_pushcclosure(L, tsb_table_length, 2);
        lua_setfield(L, table_library, *name);
    }
    lua_pop(L, 1);

    lua_getglobal(L, "coroutine");
    int coroutine_library = lua_gettop(L);
    wrap_field(L, coroutine_library, "close", tsb_coroutine_close);
    lua_getfield(L, coroutine_library, "resume");
    lua_pushcclosure(L, tsb_coroutine_wrap, 1);
    lua_setfield(L, coroutine_library, "wrap");
    lua_pop(L, 1);

    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);

    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, SOURCES_KEY);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LOADED_KEY);
    lua_pop(L, 1);
    return 0;
}

/* Frees what the VM's state holds once Lua has given back all its blocks (or never started). */
static void free_state(tsb_state *s) {
    free(s->region);
    free(s->log);
    free(s);
}

lua_State *tsb_open(size_t memory_limit, size_t log_limit_bytes) {
    tsb_state *s = calloc(1, sizeof(tsb_state));
    if (s == NULL) return NULL;
    s->limit = memory_limit;
    s->log_limit = log_limit_bytes;
    s->log = malloc(log_limit_bytes > 0 ? log_limit_bytes : 1);
    s->region = malloc(POOL_REGION);
    lua_State *L = s->log ? lua_newstate(tsb_alloc, s) : NULL;
    if (L == NULL) {
        free_state(s);
        return NULL;
    }
    lua_atpanic(L, tsb_panic);
    lua_pushcfunction(L, open_sandbox);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        tsb_close(L);
        return NULL;
    }
    lua_sethook(L, tsb_hook, HOOK_MASK, HOOK_STEP);
    return L;
}

void tsb_close(lua_State *L) {
    tsb_state *s = state_of(L);
    s->enforce = 0;
    lua_close(L);
    free_state(s);
}

int tsb_load(lua_State *L, const char *source, size_t length, const char *name) {
    tsb_state *s = state_of(L);
    s->enforce = 1;
    s->abort = TSB_ABORT_NONE;
    int status = load_text(L, source, length, name);
    s->enforce = 0;
    return status;
}

int tsb_pcall(lua_State *L, int nargs, int nresults, int64_t instruction_budget, int64_t deadline_ns) {
    tsb_state *s = state_of(L);
    int function_index = lua_gettop(L) - nargs;
    lua_pushcfunction(L, tsb_message_handler);
    lua_insert(L, function_index);
    s->budget_left = instruction_budget;
    s->deadline_ns = deadline_ns;
    s->abort = TSB_ABORT_NONE;
    s->pattern_nesting = 0;
    s->calls_judged = 0;
    lua_sethook(L, tsb_hook, HOOK_MASK, HOOK_STEP);
    s->enforce = 1;
    int status = lua_pcall(L, nargs, nresults, function_index);
    s->enforce = 0;
    lua_remove(L, function_index);
    if (status == LUA_ERRMEM) s->abort = TSB_ABORT_MEMORY;
    if (status == LUA_OK && s->abort == TSB_ABORT_MEMORY) s->abort = TSB_ABORT_NONE;
    if (status == LUA_OK && s->calls_judged) return status;
    /* Garbage this call left must not make the next one fail at the cap. The collection is the
       call's cost: it runs before the deadline is checked. */
    if (s->used > s->limit / 2) lua_gc(L, LUA_GCCOLLECT);
    /* Work the hook never saw (one C function, the collection) may have run past the deadline:
       the call failed even though it returned. */
    if (status == LUA_OK && s->abort == TSB_ABORT_NONE && coarse_now_ns() > deadline_ns) s->abort = TSB_ABORT_LATE;
    return status;
}

/* ---- runners: many calls of a script in one tsb_pcall ----

   A runner is a C function that tsb_pcall calls and that calls a script's function many
   times. Each of those calls starts and ends as a tsb_pcall of its own would (start_call,
   end_call), and the runner builds the call's arguments and reads its answer as the host
   would, outside the memory cap (only start_call turns it on). When it returns
   (runner_return) it has judged every call itself, so tsb_pcall does not judge the run as one
   call. */

/* Starts a call: a fresh instruction budget and count, `deadline_ns`, the cap on. */
static void start_call(lua_State *L, tsb_state *s, int64_t budget, int64_t deadline_ns) {
    s->budget_left = budget;
    s->deadline_ns = deadline_ns;
    s->abort = TSB_ABORT_NONE;
    s->pattern_nesting = 0;
    lua_sethook(L, tsb_hook, HOOK_MASK, HOOK_STEP);
    s->enforce = 1;
}

/* Ends a call that returned: the collection when the VM holds over half its cap, then whether
   it came back late. Returns whether the call stayed within its limits; if not, `s->abort` says
   why (a caught memory error is no failure, as in tsb_pcall). Leaves the cap off. */
static int end_call(lua_State *L, tsb_state *s) {
    s->enforce = 0;
    if (s->abort == TSB_ABORT_MEMORY) s->abort = TSB_ABORT_NONE;
    if (s->used > s->limit / 2) lua_gc(L, LUA_GCCOLLECT);
    if (s->abort == TSB_ABORT_NONE && coarse_now_ns() > s->deadline_ns) s->abort = TSB_ABORT_LATE;
    return s->abort == TSB_ABORT_NONE;
}

/* Marks the runner's calls as judged, for its return to tsb_pcall. */
static int runner_return(tsb_state *s, int results) {
    s->calls_judged = 1;
    return results;
}

tsb_abort_reason tsb_last_abort(lua_State *L) { return state_of(L)->abort; }

size_t tsb_memory_in_use(lua_State *L) { return state_of(L)->used; }

const char *tsb_take_log(lua_State *L, size_t *length, size_t *dropped) {
    tsb_state *s = state_of(L);
    *length = s->log_length;
    *dropped = s->log_dropped;
    s->log_length = 0;
    s->log_dropped = 0;
    return s->log;
}

static int register_module(lua_State *L) {
    const char *name = lua_touserdata(L, 1);
    const char *source = lua_touserdata(L, 2);
    size_t length = (size_t)lua_tointeger(L, 3);
    lua_getfield(L, LUA_REGISTRYINDEX, SOURCES_KEY);
    lua_pushlstring(L, source, length);
    lua_setfield(L, -2, name);
    lua_getfield(L, LUA_REGISTRYINDEX, LOADED_KEY);
    lua_pushnil(L);
    lua_setfield(L, -2, name);
    return 0;
}

int tsb_register_module(lua_State *L, const char *name, const char *source, size_t length) {
    lua_pushcfunction(L, register_module);
    lua_pushlightuserdata(L, (void *)name);
    lua_pushlightuserdata(L, (void *)source);
    lua_pushinteger(L, (lua_Integer)length);
    int status = lua_pcall(L, 3, 0, 0);
    if (status != LUA_OK) lua_pop(L, 1);
    return status;
}

static int make_layout(lua_State *L) {
    const char *const *names = lua_touserdata(L, 1);
    int count = (int)lua_tointeger(L, 2);
    lua_createtable(L, count, 0);
    for (int i = 0; i < count; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
    return 1;
}

int tsb_record_layout(lua_State *L, const char *const *names, int count) {
    lua_pushcfunction(L, make_layout);
    lua_pushlightuserdata(L, (void *)names);
    lua_pushinteger(L, count);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        return LUA_NOREF;
    }
    int reference = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return reference;
}

void tsb_make_record(lua_State *L, int layout, int count) {
    if (count <= 0) {
        lua_createtable(L, 0, 0);
        return;
    }
    int first = lua_gettop(L) - count + 1;
    lua_createtable(L, 0, count);
    lua_rawgeti(L, LUA_REGISTRYINDEX, layout);
    for (int i = 0; i < count; i++) {
        if (lua_type(L, first + i) == LUA_TNIL) continue;
        lua_rawgeti(L, -1, i + 1);
        lua_pushvalue(L, first + i);
        lua_rawset(L, -4);
    }
    lua_pop(L, 1);
    lua_replace(L, first);
    lua_settop(L, first);
}

/* ---- an alert rule over one device's samples ---- */

/* The runner's arguments (see tsb_push_alert_runner). */
enum {
    RUN_EVALUATE = 1,
    RUN_SAMPLES,
    RUN_STATE,
    RUN_CONTEXT,
    RUN_CONTEXT_VALUES,
    RUN_CONTEXT_LAYOUT = RUN_CONTEXT_VALUES + TSB_CONTEXT_FIELDS,
    RUN_SHARE_NS,
    RUN_WALL_CLOCK_NS,
    RUN_BUDGET,
    RUN_MAXIMUM_ELEMENTS,
    RUN_MAXIMUM_KEY_BYTES,
    RUN_COPIER,
    RUN_ARGUMENTS = RUN_COPIER
};

/* More alerts than this in one answer are left to the host's reader (their keys are compared
   pairwise here). */
#define RUN_MAXIMUM_ALERTS 16

/* Any answer the runner does not take as the host's reader would: the host runs the rule its
   slower way, which reports the fault (or takes the answer) exactly as before. */
static int refuse(lua_State *L) { return luaL_error(L, "left to the host"); }

/* Whether the table at `index` holds exactly the keys 1…n, n = #t at most `maximum` (raw). */
static lua_Integer plain_array_length(lua_State *L, int index, lua_Integer maximum) {
    lua_Integer length = (lua_Integer)lua_rawlen(L, index), entries = 0;
    if (length > maximum) return -1;
    lua_pushnil(L);
    while (lua_next(L, index) != 0) {
        lua_pop(L, 1);
        int is_integer = 0;
        lua_Integer key = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &is_integer) : 0;
        if (!is_integer || key < 1 || key > length) {
            lua_pop(L, 1);
            return -1;
        }
        entries++;
    }
    return entries == length ? length : -1;
}

static int is_ascii(const char *text, size_t length) {
    for (size_t i = 0; i < length; i++) {
        if ((unsigned char)text[i] >= 0x80) return 0;
    }
    return 1;
}

/* Pushes the raw `field` of the table at `table`; returns its type. */
static int push_field(lua_State *L, int table, const char *field) {
    lua_pushstring(L, field);
    return lua_rawget(L, table);
}

/* Pops the value on top into the raw `field` of the table at `table` (nil sets nothing). */
static void pop_field(lua_State *L, int table, const char *field) {
    lua_pushstring(L, field);
    lua_insert(L, -2);
    lua_rawset(L, table);
}

/* Pushes a copy of the alerts one evaluate call answered (at `answer`; nil is none): an array
   of fresh tables holding only key, severity, message and value (for none, the empty table at
   `none`, shared by all such steps), checked as the host's reader checks them, so that what the
   script does to its tables later changes nothing. Keys are ASCII here, so that comparing their
   bytes is comparing them as the host does. */
static void copy_alerts(lua_State *L, int answer, int none, lua_Integer maximum_elements, size_t maximum_key_bytes) {
    lua_Integer count = lua_isnil(L, answer) ? 0 : lua_istable(L, answer) ? plain_array_length(L, answer, maximum_elements) : -1;
    if (count < 0 || count > RUN_MAXIMUM_ALERTS) refuse(L);
    if (count == 0) {
        lua_pushvalue(L, none);
        return;
    }
    lua_createtable(L, (int)count, 0);
    int copy = lua_gettop(L);
    for (lua_Integer i = 1; i <= count; i++) {
        if (lua_rawgeti(L, answer, i) != LUA_TTABLE) refuse(L);
        int alert = lua_gettop(L);
        lua_createtable(L, 0, 4);
        int record = alert + 1;
        size_t length = 0;
        const char *key = push_field(L, alert, "key") == LUA_TSTRING ? lua_tolstring(L, -1, &length) : NULL;
        if (length == 0 || key[0] == '#' || length > maximum_key_bytes || !is_ascii(key, length)) refuse(L);
        for (lua_Integer earlier = 1; earlier < i; earlier++) {
            lua_rawgeti(L, copy, earlier);
            push_field(L, lua_gettop(L), "key");
            int repeated = lua_rawequal(L, -1, -3);
            lua_pop(L, 2);
            if (repeated) refuse(L);
        }
        pop_field(L, record, "key");
        if (push_field(L, alert, "message") != LUA_TSTRING) refuse(L);
        pop_field(L, record, "message");
        size_t severity_length = 0;
        const char *severity = NULL;
        switch (push_field(L, alert, "severity")) {
        case LUA_TNIL: break;
        case LUA_TSTRING: severity = lua_tolstring(L, -1, &severity_length); break;
        default: refuse(L);
        }
        if (severity && !((severity_length == 7 && memcmp(severity, "warning", 7) == 0) ||
                          (severity_length == 8 && memcmp(severity, "critical", 8) == 0))) {
            refuse(L);
        }
        pop_field(L, record, "severity");
        switch (push_field(L, alert, "value")) {
        case LUA_TNIL: break;
        case LUA_TNUMBER: if (!isfinite(lua_tonumberx(L, -1, NULL))) refuse(L); break;
        default: refuse(L);
        }
        pop_field(L, record, "value");
        lua_rawseti(L, copy, i);
        lua_pop(L, 1);
    }
}

/* Whether the alert copies at `a` and `b` have the same keys in the same order. */
static int same_keys(lua_State *L, int a, int b) {
    a = lua_absindex(L, a);
    b = lua_absindex(L, b);
    lua_Integer count = (lua_Integer)lua_rawlen(L, a);
    if ((lua_Integer)lua_rawlen(L, b) != count) return 0;
    for (lua_Integer i = 1; i <= count; i++) {
        lua_rawgeti(L, a, i);
        lua_pushliteral(L, "key");
        lua_rawget(L, -2);
        lua_rawgeti(L, b, i);
        lua_pushliteral(L, "key");
        lua_rawget(L, -2);
        int same = lua_rawequal(L, -1, -3);
        lua_pop(L, 4);
        if (!same) return 0;
    }
    return 1;
}

/* The runner: evaluate(sample, state, ctx) for each sample in turn, each call under the limits
   a call of its own would have, carrying the state from call to call; returns the last state,
   then the steps (the alert copies after each sample whose keys differ from the previous
   step's; a sample with the same keys replaces that step). */
static int run_alert_rule(lua_State *L) {
    tsb_state *s = state_of(L);
    int64_t wall_clock = lua_tointeger(L, RUN_WALL_CLOCK_NS);
    int64_t share_end = tsb_now_ns() + lua_tointeger(L, RUN_SHARE_NS);
    int64_t budget = lua_tointeger(L, RUN_BUDGET);
    lua_Integer maximum_elements = lua_tointeger(L, RUN_MAXIMUM_ELEMENTS);
    size_t maximum_key_bytes = (size_t)lua_tointeger(L, RUN_MAXIMUM_KEY_BYTES);
    int copies = lua_isfunction(L, RUN_COPIER);
    lua_Integer count = (lua_Integer)lua_rawlen(L, RUN_SAMPLES);
    lua_settop(L, RUN_ARGUMENTS);
    s->enforce = 0;
    luaL_checkstack(L, 24, "the alert runner's own values");
    int layout = (int)lua_tointeger(L, RUN_CONTEXT_LAYOUT);
    lua_createtable(L, (int)(count < 64 ? count : 64), 0);
    int steps = lua_gettop(L);
    lua_pushvalue(L, RUN_STATE);
    int state = steps + 1;
    lua_createtable(L, 0, 0);
    int none = state + 1;
    lua_Integer step_count = 0;
    for (lua_Integer i = 1; i <= count; i++) {
        int64_t now = tsb_now_ns();
        if (now > share_end) refuse(L);
        lua_pushvalue(L, RUN_EVALUATE);
        if (copies) lua_pushvalue(L, RUN_COPIER);
        lua_rawgeti(L, RUN_SAMPLES, i);
        if (copies) {
            /* The copier indexes plainly, which is raw only on a table without a metatable. A
               kept table has none unless a rule that reads them (a plugin) was changed to set
               one: then its metamethods would run here, outside every limit. */
            if (lua_getmetatable(L, -1)) refuse(L);
            lua_call(L, 1, 1);
        }
        lua_pushvalue(L, state);
        for (int field = 0; field < TSB_CONTEXT_FIELDS; field++) lua_pushvalue(L, RUN_CONTEXT_VALUES + field);
        tsb_fill_record(L, RUN_CONTEXT, layout, TSB_CONTEXT_FIELDS);
        lua_pushvalue(L, RUN_CONTEXT);
        start_call(L, s, budget, now + wall_clock < share_end ? now + wall_clock : share_end);
        lua_call(L, 3, 2);
        if (!end_call(L, s)) refuse(L);
        if (!lua_isnil(L, -1) && !lua_rawequal(L, -1, state)) {
            if (!lua_istable(L, -1)) refuse(L);
            lua_copy(L, -1, state);
        }
        lua_pop(L, 1);
        copy_alerts(L, lua_gettop(L), none, maximum_elements, maximum_key_bytes);
        int replaces = 0;
        if (step_count > 0) {
            lua_rawgeti(L, steps, step_count);
            replaces = same_keys(L, -2, -1);
            lua_pop(L, 1);
        }
        lua_rawseti(L, steps, replaces ? step_count : ++step_count);
        lua_pop(L, 1);
    }
    luaL_checkstack(L, (int)step_count + 1, "too many steps");
    lua_pushvalue(L, state);
    for (lua_Integer i = 1; i <= step_count; i++) lua_rawgeti(L, steps, i);
    return runner_return(s, (int)step_count + 1);
}

void tsb_push_alert_runner(lua_State *L) { lua_pushcfunction(L, run_alert_rule); }

/* ---- an ingest transform over consecutive samples of one device ---- */

/* The runner's arguments (see tsb_push_transform_runner). */
enum {
    TRANSFORM_FUNCTION = 1,
    TRANSFORM_CONTEXT,
    TRANSFORM_CONTEXT_VALUES,
    TRANSFORM_CONTEXT_LAYOUT = TRANSFORM_CONTEXT_VALUES + TSB_CONTEXT_FIELDS,
    TRANSFORM_SAMPLE_LAYOUT,
    TRANSFORM_ANSWER_LAYOUT,
    TRANSFORM_MODES,
    TRANSFORM_OUTPUTS,
    TRANSFORM_BATCH,
    TRANSFORM_SERIAL,
    TRANSFORM_WALL_CLOCK_NS,
    TRANSFORM_BUDGET,
    TRANSFORM_DEADLINE_NS,
    TRANSFORM_ARGUMENTS = TRANSFORM_DEADLINE_NS
};

/* The fields of the sample table and of the answer, in their layouts' order. */
enum { SAMPLE_DEVICE, SAMPLE_TIMESTAMP, SAMPLE_TIME, SAMPLE_MODE, SAMPLE_INSIDE, SAMPLE_OUTSIDE, SAMPLE_SETPOINT,
       SAMPLE_HYSTERESIS, SAMPLE_OUTPUT, SAMPLE_FIELDS };
enum { ANSWER_MODE, ANSWER_OUTPUT, ANSWER_INSIDE, ANSWER_OUTSIDE, ANSWER_SETPOINT, ANSWER_HYSTERESIS, ANSWER_FIELDS };

/* Pushes the `count` names of the layout array `layout` (a registry reference); returns the
   stack index of the first. */
static int push_names(lua_State *L, int layout, int count) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, layout);
    int names = lua_gettop(L);
    for (int i = 1; i <= count; i++) lua_rawgeti(L, names, i);
    lua_remove(L, names);
    return names;
}

/* The index of the value on top among the `count` names from stack index `names`, or -1.
   Short strings are interned, so equal names are the same object. */
static int name_index(lua_State *L, int names, int count) {
    for (int i = 0; i < count; i++) {
        if (lua_rawequal(L, -1, names + i)) return i;
    }
    return -1;
}

/* Reads the number on top into `value` if it is a finite number within [low, high]. */
static int take_number(lua_State *L, double low, double high, double *value) {
    if (lua_type(L, -1) != LUA_TNUMBER) return 0;
    double number = lua_tonumberx(L, -1, NULL);
    if (!isfinite(number) || number < low || number > high) return 0;
    *value = number;
    return 1;
}

/* The names a transform run pushes once (stack indexes of the first of each). */
typedef struct {
    int sample_keys, answer_keys, context_keys, modes, mode_count, outputs, output_count;
} transform_names;

/* Takes the answer at `answer` into `sample` when the host's reader would accept it as it is;
   returns 0 (and leaves `sample` as it was) otherwise. */
static int take_answer(lua_State *L, int answer, const transform_names *names, const tsb_sample_batch *batch,
                       tsb_sample *sample) {
    if (lua_type(L, answer) != LUA_TTABLE) return 0;
    tsb_sample taken = *sample;
    int ok = 1;
    for (int field = 0; field < ANSWER_FIELDS && ok; field++) {
        lua_pushvalue(L, names->answer_keys + field);
        int type = lua_rawget(L, answer);
        switch (field) {
        case ANSWER_MODE:
            taken.mode = type == LUA_TSTRING ? name_index(L, names->modes, names->mode_count) : -1;
            ok = taken.mode >= 0;
            break;
        case ANSWER_OUTPUT:
            taken.output = type == LUA_TSTRING ? name_index(L, names->outputs, names->output_count) : -1;
            ok = taken.output >= 0;
            break;
        case ANSWER_INSIDE: ok = take_number(L, batch->temperature_min, batch->temperature_max, &taken.temp_inside); break;
        case ANSWER_OUTSIDE:
            taken.has_temp_outside = type != LUA_TNIL;
            ok = !taken.has_temp_outside || take_number(L, batch->temperature_min, batch->temperature_max, &taken.temp_outside);
            break;
        case ANSWER_SETPOINT: ok = take_number(L, batch->setpoint_min, batch->setpoint_max, &taken.setpoint); break;
        case ANSWER_HYSTERESIS: ok = take_number(L, batch->hysteresis_min, batch->hysteresis_max, &taken.hysteresis); break;
        }
        lua_pop(L, 1);
    }
    if (ok) *sample = taken;
    return ok;
}

/* Pushes the value on top into the raw field named by the key at `key` of the table at `table`. */
static void set_field(lua_State *L, int table, int key) {
    lua_pushvalue(L, key);
    lua_insert(L, -2);
    lua_rawset(L, table);
}

/* Pushes the table a transform call gets for `sample` (the layout's nine fields). */
static void push_sample(lua_State *L, const transform_names *names, const tsb_sample *sample) {
    lua_createtable(L, 0, SAMPLE_FIELDS);
    int table = lua_gettop(L);
    lua_pushvalue(L, TRANSFORM_SERIAL);
    set_field(L, table, names->sample_keys + SAMPLE_DEVICE);
    lua_pushlstring(L, sample->timestamp, sample->timestamp_length);
    set_field(L, table, names->sample_keys + SAMPLE_TIMESTAMP);
    lua_pushnumber(L, sample->time);
    set_field(L, table, names->sample_keys + SAMPLE_TIME);
    lua_pushvalue(L, names->modes + sample->mode);
    set_field(L, table, names->sample_keys + SAMPLE_MODE);
    lua_pushnumber(L, sample->temp_inside);
    set_field(L, table, names->sample_keys + SAMPLE_INSIDE);
    if (sample->has_temp_outside) {
        lua_pushnumber(L, sample->temp_outside);
        set_field(L, table, names->sample_keys + SAMPLE_OUTSIDE);
    }
    lua_pushnumber(L, sample->setpoint);
    set_field(L, table, names->sample_keys + SAMPLE_SETPOINT);
    lua_pushnumber(L, sample->hysteresis);
    set_field(L, table, names->sample_keys + SAMPLE_HYSTERESIS);
    lua_pushvalue(L, names->outputs + sample->output);
    set_field(L, table, names->sample_keys + SAMPLE_OUTPUT);
}

/* The runner: transform(sample, ctx) for each sample in turn, each call under the limits a call
   of its own would have; see tsb_push_transform_runner. */
static int run_transform(lua_State *L) {
    tsb_state *s = state_of(L);
    tsb_sample_batch *batch = lua_touserdata(L, TRANSFORM_BATCH);
    int64_t wall_clock = lua_tointeger(L, TRANSFORM_WALL_CLOCK_NS);
    int64_t budget = lua_tointeger(L, TRANSFORM_BUDGET);
    int64_t batch_deadline = lua_tointeger(L, TRANSFORM_DEADLINE_NS);
    lua_settop(L, TRANSFORM_ARGUMENTS);
    s->enforce = 0;
    transform_names names;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lua_tointeger(L, TRANSFORM_MODES));
    names.mode_count = (int)lua_rawlen(L, -1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lua_tointeger(L, TRANSFORM_OUTPUTS));
    names.output_count = (int)lua_rawlen(L, -1);
    lua_pop(L, 2);
    luaL_checkstack(L, SAMPLE_FIELDS + ANSWER_FIELDS + TSB_CONTEXT_FIELDS + names.mode_count + names.output_count + 24,
                    "the transform runner's own values");
    names.sample_keys = push_names(L, (int)lua_tointeger(L, TRANSFORM_SAMPLE_LAYOUT), SAMPLE_FIELDS);
    names.answer_keys = push_names(L, (int)lua_tointeger(L, TRANSFORM_ANSWER_LAYOUT), ANSWER_FIELDS);
    names.context_keys = push_names(L, (int)lua_tointeger(L, TRANSFORM_CONTEXT_LAYOUT), TSB_CONTEXT_FIELDS);
    names.modes = push_names(L, (int)lua_tointeger(L, TRANSFORM_MODES), names.mode_count);
    names.outputs = push_names(L, (int)lua_tointeger(L, TRANSFORM_OUTPUTS), names.output_count);
    int base = lua_gettop(L);
    for (batch->next = 0; batch->next < batch->count; batch->next++) {
        tsb_sample *sample = &batch->samples[batch->next];
        if (sample->mode < 0 || sample->mode >= names.mode_count || sample->output < 0 || sample->output >= names.output_count) {
            return luaL_error(L, "a sample's mode or output has no name");
        }
        int64_t now = tsb_now_ns();
        if (now > batch_deadline) {
            batch->ended = TSB_RUN_OUT_OF_TIME;
            return runner_return(s, 0);
        }
        lua_pushvalue(L, TRANSFORM_FUNCTION);
        push_sample(L, &names, sample);
        for (int field = 0; field < TSB_CONTEXT_FIELDS; field++) {
            lua_pushvalue(L, TRANSFORM_CONTEXT_VALUES + field);
            set_field(L, TRANSFORM_CONTEXT, names.context_keys + field);
        }
        lua_pushvalue(L, TRANSFORM_CONTEXT);
        start_call(L, s, budget, now + wall_clock);
        lua_call(L, 2, 2);
        /* A call that ran out of its budget or time (the script caught the error) or returned
           late fails as a call of its own would: the protected call reports `s->abort`. */
        if (!end_call(L, s)) return runner_return(s, 0);
        if (lua_isnil(L, base + 1) || !take_answer(L, base + 1, &names, batch, sample)) {
            batch->ended = TSB_RUN_ANSWER;
            return runner_return(s, 2);
        }
        lua_settop(L, base);
    }
    batch->ended = TSB_RUN_FINISHED;
    return runner_return(s, 0);
}

void tsb_push_transform_runner(lua_State *L) { lua_pushcfunction(L, run_transform); }

void tsb_fill_record(lua_State *L, int table_index, int layout, int count) {
    table_index = lua_absindex(L, table_index);
    int first = lua_gettop(L) - count + 1;
    lua_rawgeti(L, LUA_REGISTRYINDEX, layout);
    for (int i = 0; i < count; i++) {
        lua_rawgeti(L, -1, i + 1);
        lua_pushvalue(L, first + i);
        lua_rawset(L, table_index);
    }
    lua_settop(L, first - 1);
}

void tsb_read_record(lua_State *L, int table_index, int layout, int count, tsb_field *fields) {
    table_index = lua_absindex(L, table_index);
    lua_rawgeti(L, LUA_REGISTRYINDEX, layout);
    for (int i = 0; i < count; i++) {
        lua_rawgeti(L, -1, i + 1);
        int type = lua_rawget(L, table_index);
        fields[i].type = type;
        fields[i].number = type == LUA_TNUMBER ? lua_tonumberx(L, -1, NULL) : 0;
        fields[i].string = NULL;
        fields[i].length = 0;
        if (type == LUA_TSTRING) fields[i].string = lua_tolstring(L, -1, &fields[i].length);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

void tsb_trace_requires(lua_State *L, int on) {
    if (on) {
        lua_newtable(L);
    } else {
        lua_pushnil(L);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, REQUIRED_KEY);
}

int tsb_required_count(lua_State *L) {
    int count = 0;
    if (lua_getfield(L, LUA_REGISTRYINDEX, REQUIRED_KEY) == LUA_TTABLE) count = (int)lua_rawlen(L, -1);
    lua_pop(L, 1);
    return count;
}

const char *tsb_required_name(lua_State *L, int index, size_t *length) {
    const char *name = NULL;
    *length = 0;
    if (lua_getfield(L, LUA_REGISTRYINDEX, REQUIRED_KEY) == LUA_TTABLE) {
        if (lua_rawgeti(L, -1, index + 1) == LUA_TSTRING) name = lua_tolstring(L, -1, length);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return name;
}

void tsb_collect_garbage(lua_State *L) { lua_gc(L, LUA_GCCOLLECT); }

int tsb_registry_index(void) { return LUA_REGISTRYINDEX; }

void tsb_pop(lua_State *L, int n) { lua_pop(L, n); }

const char *tsb_tostring(lua_State *L, int index, size_t *length) {
    if (lua_type(L, index) != LUA_TSTRING) {
        *length = 0;
        return NULL;
    }
    return lua_tolstring(L, index, length);
}
