/*
 * The floor under the Lua ingest transform benchmark (LuaBenchmark): the same work written
 * directly against Debian's liblua5.4, with no sandbox (default allocator, no count hook, no
 * deadline) and no Swift. Per call: a 9-field sample table built from interned keys, a fresh
 * timestamp string, a ctx table whose `now` changes, the trivial transform, and six fields
 * read back. `make bench` builds and runs it; BENCHMARKS.md compares the two.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec + now.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int calls = argc > 1 ? atoi(argv[1]) : 1000000;
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_dostring(L, "return function(s, ctx) s.temp_inside_c = s.temp_inside_c + 0.5 return s end") != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        return 1;
    }
    int transform = luaL_ref(L, LUA_REGISTRYINDEX);
    static const char *const keys[] = {
        "device_id", "timestamp", "time", "mode", "temp_inside_c", "temp_outside_c", "setpoint_c", "hysteresis_c", "output",
    };
    lua_createtable(L, 9, 0);
    for (int i = 0; i < 9; i++) {
        lua_pushstring(L, keys[i]);
        lua_rawseti(L, -2, i + 1);
    }
    int layout = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    int ctx = luaL_ref(L, LUA_REGISTRYINDEX);

    double checksum = 0;
    double started = seconds_now();
    for (int n = 0; n < calls; n++) {
        char timestamp[40];
        lua_rawgeti(L, LUA_REGISTRYINDEX, transform);
        lua_createtable(L, 0, 9);
        lua_rawgeti(L, LUA_REGISTRYINDEX, layout);
        for (int i = 0; i < 9; i++) {
            lua_rawgeti(L, -1, i + 1);
            switch (i) {
            case 0: lua_pushliteral(L, "TH-0001"); break;
            case 1:
                snprintf(timestamp, sizeof timestamp, "2026-11-29T07:00:%02d.%06dZ", n % 60, n % 1000000);
                lua_pushstring(L, timestamp);
                break;
            case 3: lua_pushliteral(L, "HEAT"); break;
            case 8: lua_pushliteral(L, "HEAT_ON"); break;
            default: lua_pushnumber(L, 20.5);
            }
            lua_rawset(L, -4);
        }
        lua_pop(L, 1);
        lua_rawgeti(L, LUA_REGISTRYINDEX, ctx);
        lua_pushnumber(L, n);
        lua_setfield(L, -2, "now");
        if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
            fprintf(stderr, "%s\n", lua_tostring(L, -1));
            return 1;
        }
        lua_rawgeti(L, LUA_REGISTRYINDEX, layout);
        for (int i = 3; i < 9; i++) {
            lua_rawgeti(L, -1, i + 1);
            lua_rawget(L, -3);
            checksum += lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 2);
    }
    double elapsed = seconds_now() - started;
    printf("plain C against liblua, same work, no sandbox   %.3f µs/call  (%d calls, checksum %.0f)\n",
           elapsed / calls * 1e6, calls, checksum);
    lua_close(L);
    return 0;
}
