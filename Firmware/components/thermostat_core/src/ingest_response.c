#include "thermostat/ingest_response.h"

#include <stdbool.h>
#include <string.h>

#define MAX_DEPTH 16
#define KEY_MAX 16

typedef struct {
    const char *p;
    const char *end;
} cursor_t;

static void skip_blanks(cursor_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
        c->p++;
    }
}

static bool consume(cursor_t *c, char expected)
{
    skip_blanks(c);
    if (c->p < c->end && *c->p == expected) {
        c->p++;
        return true;
    }
    return false;
}

/* Reads a string; its raw content (truncated to fit) lands in key[cap] when key is not NULL. */
static bool read_string(cursor_t *c, char *key, size_t cap)
{
    size_t n = 0;
    if (!consume(c, '"')) {
        return false;
    }
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\') {
            c->p++;
            if (c->p == c->end) {
                return false;
            }
        }
        if (key != NULL && n + 1 < cap) {
            key[n++] = *c->p;
        }
        c->p++;
    }
    if (key != NULL) {
        key[n] = '\0';
    }
    return consume(c, '"');
}

static bool read_count(cursor_t *c, uint32_t *out)
{
    uint64_t value = 0;
    skip_blanks(c);
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        value = value * 10 + (uint64_t)(*c->p - '0');
        if (value > UINT32_MAX) {
            return false;
        }
        c->p++;
    }
    *out = (uint32_t)value;
    return c->p != start && (c->p == c->end || (*c->p != '.' && *c->p != 'e' && *c->p != 'E'));
}

static bool skip_value(cursor_t *c, int depth);

static bool skip_container(cursor_t *c, char close, bool members, int depth)
{
    if (consume(c, close)) {
        return true;
    }
    do {
        if ((members && (!read_string(c, NULL, 0) || !consume(c, ':'))) ||
            !skip_value(c, depth + 1)) {
            return false;
        }
    } while (consume(c, ','));
    return consume(c, close);
}

static bool skip_value(cursor_t *c, int depth)
{
    skip_blanks(c);
    if (c->p == c->end || depth > MAX_DEPTH) {
        return false;
    }
    if (*c->p == '"') {
        return read_string(c, NULL, 0);
    }
    if (*c->p == '{' || *c->p == '[') {
        const bool object = *c->p == '{';
        c->p++;
        return skip_container(c, object ? '}' : ']', object, depth);
    }
    const char *start = c->p;
    while (c->p < c->end && *c->p != '\0' && strchr("+-.0123456789eEtruefalsn", *c->p) != NULL) {
        c->p++;
    }
    return c->p != start;
}

/* A plain string (no escapes) of 1..cap-1 bytes into out[cap]. */
static bool read_plain_string(cursor_t *c, char *out, size_t cap)
{
    size_t n = 0;
    if (!consume(c, '"')) {
        return false;
    }
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\' || (unsigned char)*c->p < 0x20 || n + 1 >= cap) {
            return false;
        }
        out[n++] = *c->p++;
    }
    out[n] = '\0';
    return n > 0 && consume(c, '"');
}

/* Walks the members of the object just opened; true once `code` of "error" was read. */
static bool find_code(cursor_t *c, bool in_error, char *code)
{
    char key[KEY_MAX];
    if (consume(c, '}')) {
        return false;
    }
    do {
        if (!read_string(c, key, sizeof key) || !consume(c, ':')) {
            return false;
        }
        if (in_error && strcmp(key, "code") == 0) {
            return read_plain_string(c, code, TH_ERROR_CODE_MAX + 1);
        }
        if (!in_error && strcmp(key, "error") == 0) {
            return consume(c, '{') && find_code(c, true, code);
        }
        if (!skip_value(c, 2)) {
            return false;
        }
    } while (consume(c, ','));
    return false;
}

th_status_t th_error_code_parse(const char *body, size_t len, char *code)
{
    cursor_t c = {body, body + len};
    if (consume(&c, '{') && find_code(&c, false, code)) {
        return TH_OK;
    }
    code[0] = '\0';
    return TH_ERR_INVALID;
}

th_status_t th_ingest_response_parse(const char *body, size_t len, uint32_t *accepted,
                                     uint32_t *duplicates)
{
    cursor_t c = {body, body + len};
    bool have_accepted = false, have_duplicates = false;
    char key[KEY_MAX];

    if (!consume(&c, '{')) {
        return TH_ERR_INVALID;
    }
    if (!consume(&c, '}')) {
        do {
            if (!read_string(&c, key, sizeof key) || !consume(&c, ':')) {
                return TH_ERR_INVALID;
            }
            bool ok;
            if (strcmp(key, "accepted") == 0) {
                ok = read_count(&c, accepted);
                have_accepted = true;
            } else if (strcmp(key, "duplicates") == 0) {
                ok = read_count(&c, duplicates);
                have_duplicates = true;
            } else {
                ok = skip_value(&c, 1);
            }
            if (!ok) {
                return TH_ERR_INVALID;
            }
        } while (consume(&c, ','));
        if (!consume(&c, '}')) {
            return TH_ERR_INVALID;
        }
    }
    skip_blanks(&c);
    return (c.p == c.end && have_accepted && have_duplicates) ? TH_OK : TH_ERR_INVALID;
}
