/*
 * degu._cparse: the compiled core, an optional C version of the hot parsers
 * and renderers of degu/_parse.py (see doc/hacking.rst, 'The compiled core').
 *
 * Each function here takes the same arguments as its namesake in
 * degu/_parse.py and gives the same result.  It handles the common, valid
 * case itself; for anything else (an error, an unusual argument type, a
 * keyword argument, a rare form such as a repeated header field or a chunk
 * extension) it calls the pure-Python function it replaces, which stays the
 * reference: so every exception, with its message and status, is the one
 * the pure-Python code raises.  The reference functions are handed over by
 * degu._parse through _bind().
 *
 * The input comes from the network.  Every loop index stays within the
 * length of the object it reads, every size is a Py_ssize_t bounded before
 * it is used, and sums of sizes are checked against PY_SSIZE_T_MAX.
 * .ci/fuzz-core runs the differential tests against a build with
 * AddressSanitizer and UndefinedBehaviorSanitizer.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* The limits of degu/_parse.py; tests/test_core.py checks they agree. */
#define MAX_REQUEST_LINE_LEN (8 * 1024)
#define MAX_HEADER_COUNT 100
#define MAX_LINE_LEN (4 * 1024)
#define MAX_CL_LEN 16
#define MAX_CHUNK_SIZE_LEN 16
#define MAX_IO_SIZE (16 * 1024 * 1024)

/* ------------------------------------------------------------------------
 * The reference functions, and the call that hands a case over to them. */

enum {
    F_PARSE_REQUEST_LINE,
    F_PARSE_RESPONSE_LINE,
    F_PARSE_HEADERS,
    F_PARSE_CHUNK,
    F_CHUNK_END,
    F_RENDER_REQUEST,
    F_RENDER_RESPONSE,
    F_FORMAT_CHUNK,
    F_COUNT
};

static const char *const NAMES[F_COUNT] = {
    "parse_request_line",
    "parse_response_line",
    "parse_headers",
    "parse_chunk",
    "chunk_end",
    "render_request",
    "render_response",
    "format_chunk",
};

static PyObject *reference[F_COUNT];

static PyObject *
fallback(int which, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *func = reference[which];
    if (func == NULL) {
        PyErr_Format(PyExc_RuntimeError,
                     "degu._cparse.%s: no reference function; call _bind() first",
                     NAMES[which]);
        return NULL;
    }
    return PyObject_Vectorcall(func, args, (size_t)nargs, kwnames);
}

/* ------------------------------------------------------------------------
 * Byte classes, filled in at import from the grammar of degu/_parse.py. */

static unsigned char TCHAR[256];        /* token characters (RFC 9110 5.6.2) */
static unsigned char LOWER_TCHAR[256];  /* the same without A-Z */
static unsigned char TARGET[256];       /* origin-form path: pchar, "/", "?", "%" */
static unsigned char QUERY[256];        /* the query: visible ASCII but "#" */
static unsigned char FIELD[256];        /* HTAB, SP, VCHAR, obs-text */
static unsigned char BAD_TEXT[256];     /* control bytes but HTAB, and DEL */
static unsigned char HOST[256];         /* reg-name: unreserved and sub-delims */
static signed char HEX[256];            /* hex digit value, or -1 */

static void
mark(unsigned char *table, const char *chars)
{
    for (const unsigned char *p = (const unsigned char *)chars; *p; p++) {
        table[*p] = 1;
    }
}

static void
fill_tables(void)
{
    static const char *const alnum =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    mark(TCHAR, "!#$%&'*+-.^_`|~");
    mark(TCHAR, alnum);
    mark(LOWER_TCHAR, "!#$%&'*+-.^_`|~abcdefghijklmnopqrstuvwxyz0123456789");
    mark(TARGET, alnum);
    mark(TARGET, "-._~!$&'()*+,;=:@/?%");
    mark(HOST, alnum);
    mark(HOST, "-._~!$&'()*+,;=");
    for (int b = 0; b < 256; b++) {
        QUERY[b] = (b >= 0x21 && b <= 0x7E && b != 0x23);
        FIELD[b] = (b == 9 || (b >= 32 && b < 127) || b >= 128);
        BAD_TEXT[b] = ((b <= 0x1F && b != 9) || b == 0x7F);
        HEX[b] = -1;
    }
    for (int b = '0'; b <= '9'; b++) {
        HEX[b] = (signed char)(b - '0');
    }
    for (int b = 'a'; b <= 'f'; b++) {
        HEX[b] = (signed char)(b - 'a' + 10);
        HEX[b - 'a' + 'A'] = (signed char)(b - 'a' + 10);
    }
}

/* ------------------------------------------------------------------------
 * Constant strings, made once at import. */

static const char *const METHOD_NAMES[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS",
};
#define METHOD_COUNT ((int)(sizeof(METHOD_NAMES) / sizeof(METHOD_NAMES[0])))
static PyObject *METHOD_STR[METHOD_COUNT];
static PyObject *HTTP11;       /* 'HTTP/1.1' */
static PyObject *HTTP10;       /* 'HTTP/1.0' */
static PyObject *CHUNKED;      /* 'chunked' */

/* Field names are folded to lower case; the common ones are found in this
 * table and shared, the others are made on each call. */
static const char *const COMMON_NAMES[] = {
    "accept", "accept-encoding", "accept-language", "authorization",
    "cache-control", "connection", "content-encoding", "content-length",
    "content-range", "content-type", "cookie", "date", "etag", "expect",
    "host", "if-modified-since", "if-none-match", "last-modified",
    "location", "origin", "range", "referer", "server", "set-cookie",
    "transfer-encoding", "upgrade", "user-agent", "vary",
};
#define COMMON_COUNT ((int)(sizeof(COMMON_NAMES) / sizeof(COMMON_NAMES[0])))
static PyObject *COMMON_STR[COMMON_COUNT];
static Py_ssize_t COMMON_LEN[COMMON_COUNT];

/* Fields whose values are parsed (degu._parse._VALUE_PARSERS). */
enum { S_NONE, S_CONTENT_LENGTH, S_TRANSFER_ENCODING, S_RANGE, S_CONTENT_RANGE, S_HOST };

static int
special_kind(const char *name, Py_ssize_t len)
{
    switch (len) {
    case 4:
        return memcmp(name, "host", 4) == 0 ? S_HOST : S_NONE;
    case 5:
        return memcmp(name, "range", 5) == 0 ? S_RANGE : S_NONE;
    case 13:
        return memcmp(name, "content-range", 13) == 0 ? S_CONTENT_RANGE : S_NONE;
    case 14:
        return memcmp(name, "content-length", 14) == 0 ? S_CONTENT_LENGTH : S_NONE;
    case 17:
        return memcmp(name, "transfer-encoding", 17) == 0 ? S_TRANSFER_ENCODING : S_NONE;
    default:
        return S_NONE;
    }
}

/* A str of *len* ASCII bytes the caller has checked are all < 0x80. */
static PyObject *
ascii_str(const char *src, Py_ssize_t len)
{
    PyObject *str = PyUnicode_New(len, 127);
    if (str != NULL && len > 0) {
        memcpy(PyUnicode_1BYTE_DATA(str), src, (size_t)len);
    }
    return str;
}

/* The lower-case str of a field name whose bytes are all TCHAR. */
static PyObject *
folded_name(const char *src, Py_ssize_t len)
{
    char low[32];
    if (len <= (Py_ssize_t)sizeof(low)) {
        for (Py_ssize_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)src[i];
            low[i] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        }
        for (int k = 0; k < COMMON_COUNT; k++) {
            if (COMMON_LEN[k] == len && COMMON_NAMES[k][0] == low[0]
                    && memcmp(low, COMMON_NAMES[k], (size_t)len) == 0) {
                Py_INCREF(COMMON_STR[k]);
                return COMMON_STR[k];
            }
        }
        return ascii_str(low, len);
    }
    PyObject *str = PyUnicode_New(len, 127);
    if (str == NULL) {
        return NULL;
    }
    Py_UCS1 *dst = PyUnicode_1BYTE_DATA(str);
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (Py_UCS1)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    return str;
}

/* ------------------------------------------------------------------------
 * parse_request_line(line) -> (method, uri, path, query, version) */

/* Origin-form target src[0:len] (src[0] == '/') as (uri, path, query), or
 * NULL with no exception set when the reference must decide. */
static PyObject *
origin_form(const char *src, Py_ssize_t len, PyObject **path_out, PyObject **query_out)
{
    Py_ssize_t q = len;  /* where the query starts ('?'), len when none */
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '?') {
            q = i;
            break;
        }
        if (!TARGET[c]) {
            return NULL;
        }
    }
    for (Py_ssize_t i = q; i < len; i++) {
        if (!QUERY[(unsigned char)src[i]]) {
            return NULL;
        }
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        if (src[i] == '%') {
            /* A "%" starts a two-hex-digit escape. */
            if (len - i < 3 || HEX[(unsigned char)src[i + 1]] < 0
                    || HEX[(unsigned char)src[i + 2]] < 0) {
                return NULL;
            }
        }
    }
    /* The path, src[0:q]: no "//", no "." or ".." segment. */
    for (Py_ssize_t i = 1; i < q; i++) {
        if (src[i] == '/' && src[i - 1] == '/') {
            return NULL;
        }
    }
    Py_ssize_t count = 0;  /* path segments */
    if (q > 1) {
        Py_ssize_t start = 1;
        for (Py_ssize_t i = 1; i <= q; i++) {
            if (i == q || src[i] == '/') {
                Py_ssize_t n = i - start;
                if ((n == 1 && src[start] == '.')
                        || (n == 2 && src[start] == '.' && src[start + 1] == '.')) {
                    return NULL;
                }
                count++;
                start = i + 1;
            }
        }
    }
    PyObject *uri = ascii_str(src, len);
    if (uri == NULL) {
        return NULL;
    }
    PyObject *path = PyList_New(count);
    if (path == NULL) {
        Py_DECREF(uri);
        return NULL;
    }
    if (count > 0) {
        Py_ssize_t start = 1;
        Py_ssize_t k = 0;
        for (Py_ssize_t i = 1; i <= q && k < count; i++) {
            if (i == q || src[i] == '/') {
                PyObject *segment = ascii_str(src + start, i - start);
                if (segment == NULL) {
                    Py_DECREF(path);
                    Py_DECREF(uri);
                    return NULL;
                }
                PyList_SET_ITEM(path, k, segment);
                k++;
                start = i + 1;
            }
        }
    }
    PyObject *query;
    if (q < len) {
        query = ascii_str(src + q + 1, len - q - 1);
        if (query == NULL) {
            Py_DECREF(path);
            Py_DECREF(uri);
            return NULL;
        }
    }
    else {
        Py_INCREF(Py_None);
        query = Py_None;
    }
    *path_out = path;
    *query_out = query;
    return uri;
}

/* Request lines seen before -> (method, uri, path as a tuple, query,
 * version), like degu._parse's request-targets: clients repeat their
 * endpoints.  Each result gets a fresh path list (apps shift_path() it). */
#define LINE_CACHE_MAX 1024  /* entries; cleared when full */
#define LINE_CACHE_LEN 272   /* bytes: a 256-byte target, method and version */
static PyObject *LINE_CACHE;

/* The result for a cached entry. */
static PyObject *
request_from_cache(PyObject *cached)
{
    PyObject *path = PySequence_List(PyTuple_GET_ITEM(cached, 2));
    if (path == NULL) {
        return NULL;
    }
    PyObject *result = PyTuple_New(5);
    if (result == NULL) {
        Py_DECREF(path);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < 5; i++) {
        PyObject *item = i == 2 ? path : PyTuple_GET_ITEM(cached, i);
        if (i != 2) {
            Py_INCREF(item);
        }
        PyTuple_SET_ITEM(result, i, item);
    }
    return result;
}

/* Keep *result* for *line*; 0, or -1 with an exception set. */
static int
cache_request(PyObject *line, PyObject *result)
{
    PyObject *entry = PyTuple_New(5);
    if (entry == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < 5; i++) {
        PyObject *item = PyTuple_GET_ITEM(result, i);
        if (i == 2) {
            item = PyList_AsTuple(item);
            if (item == NULL) {
                Py_DECREF(entry);
                return -1;
            }
        }
        else {
            Py_INCREF(item);
        }
        PyTuple_SET_ITEM(entry, i, item);
    }
    if (PyDict_GET_SIZE(LINE_CACHE) >= LINE_CACHE_MAX) {
        PyDict_Clear(LINE_CACHE);
    }
    int failed = PyDict_SetItem(LINE_CACHE, line, entry);
    Py_DECREF(entry);
    return failed;
}

/* The result for the request line *src* (a bytes object), or NULL with no
 * exception set when the reference must decide. */
static PyObject *
request_line(PyObject *src)
{
    const char *line = PyBytes_AS_STRING(src);
    Py_ssize_t len = PyBytes_GET_SIZE(src);
    if (len > MAX_REQUEST_LINE_LEN) {
        return NULL;
    }
    if (len <= LINE_CACHE_LEN) {
        PyObject *cached = PyDict_GetItemWithError(LINE_CACHE, src);
        if (cached != NULL) {
            Py_INCREF(cached);  /* owned while the result is made */
            PyObject *result = request_from_cache(cached);
            Py_DECREF(cached);
            return result;
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    /* Exactly two SP. */
    Py_ssize_t sp1 = -1, sp2 = -1;
    for (Py_ssize_t i = 0; i < len; i++) {
        if (line[i] == ' ') {
            if (sp1 < 0) {
                sp1 = i;
            }
            else if (sp2 < 0) {
                sp2 = i;
            }
            else {
                return NULL;
            }
        }
    }
    if (sp2 < 0) {
        return NULL;
    }
    PyObject *method = NULL;
    for (int k = 0; k < METHOD_COUNT; k++) {
        if ((Py_ssize_t)strlen(METHOD_NAMES[k]) == sp1
                && memcmp(line, METHOD_NAMES[k], (size_t)sp1) == 0) {
            method = METHOD_STR[k];
            break;
        }
    }
    PyObject *version = NULL;
    if (len - sp2 - 1 == 8 && memcmp(line + sp2 + 1, "HTTP/1.", 7) == 0) {
        if (line[len - 1] == '1') {
            version = HTTP11;
        }
        else if (line[len - 1] == '0') {
            version = HTTP10;
        }
    }
    Py_ssize_t tlen = sp2 - sp1 - 1;
    if (method == NULL || version == NULL || tlen < 1 || line[sp1 + 1] != '/') {
        return NULL;
    }
    PyObject *path = NULL, *query = NULL;
    PyObject *uri = origin_form(line + sp1 + 1, tlen, &path, &query);
    if (uri == NULL) {
        return NULL;  /* an exception, or the reference decides */
    }
    PyObject *result = PyTuple_New(5);
    if (result == NULL) {
        Py_DECREF(uri);
        Py_DECREF(path);
        Py_DECREF(query);
        return NULL;
    }
    Py_INCREF(method);
    Py_INCREF(version);
    PyTuple_SET_ITEM(result, 0, method);
    PyTuple_SET_ITEM(result, 1, uri);
    PyTuple_SET_ITEM(result, 2, path);
    PyTuple_SET_ITEM(result, 3, query);
    PyTuple_SET_ITEM(result, 4, version);
    if (len <= LINE_CACHE_LEN && cache_request(src, result) < 0) {
        Py_DECREF(result);
        return NULL;
    }
    return result;
}

static PyObject *
parse_request_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 1 || kwnames != NULL || !PyBytes_CheckExact(args[0])) {
        return fallback(F_PARSE_REQUEST_LINE, args, nargs, kwnames);
    }
    PyObject *result = request_line(args[0]);
    if (result == NULL && !PyErr_Occurred()) {
        return fallback(F_PARSE_REQUEST_LINE, args, nargs, kwnames);
    }
    return result;
}

/* ------------------------------------------------------------------------
 * parse_response_line(line) -> (version, status, reason) */

/* Status lines seen before -> (version, status, reason), as in degu._parse:
 * servers repeat a handful, and their reasons are then shared. */
#define STATUS_CACHE_MAX 64   /* entries; cleared when full */
#define STATUS_CACHE_LEN 64   /* bytes: longer lines are not kept */
static PyObject *STATUS_CACHE;

/* The result for the status line *src* (a bytes object), or NULL with no
 * exception set when the reference must decide. */
static PyObject *
status_line(PyObject *src)
{
    PyObject *cached = PyDict_GetItemWithError(STATUS_CACHE, src);
    if (cached != NULL) {
        Py_INCREF(cached);
        return cached;
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    const unsigned char *line = (const unsigned char *)PyBytes_AS_STRING(src);
    Py_ssize_t len = PyBytes_GET_SIZE(src);
    /* "HTTP/1.x SSS" [" " reason] */
    if (len < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[8] != ' '
            || line[9] < '1' || line[9] > '5'
            || line[10] < '0' || line[10] > '9'
            || line[11] < '0' || line[11] > '9'
            || (len > 12 && line[12] != ' ')) {
        return NULL;
    }
    PyObject *version;
    if (line[7] == '1') {
        version = HTTP11;
    }
    else if (line[7] == '0') {
        version = HTTP10;
    }
    else {
        return NULL;
    }
    Py_ssize_t rstart = len > 12 ? 13 : 12;
    for (Py_ssize_t i = rstart; i < len; i++) {
        if (BAD_TEXT[line[i]]) {
            return NULL;
        }
    }
    long code = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    PyObject *status = PyLong_FromLong(code);
    if (status == NULL) {
        return NULL;
    }
    PyObject *reason = PyUnicode_DecodeLatin1((const char *)line + rstart, len - rstart, NULL);
    if (reason == NULL) {
        Py_DECREF(status);
        return NULL;
    }
    PyObject *result = PyTuple_New(3);
    if (result == NULL) {
        Py_DECREF(status);
        Py_DECREF(reason);
        return NULL;
    }
    Py_INCREF(version);
    PyTuple_SET_ITEM(result, 0, version);
    PyTuple_SET_ITEM(result, 1, status);
    PyTuple_SET_ITEM(result, 2, reason);
    if (len <= STATUS_CACHE_LEN) {
        if (PyDict_GET_SIZE(STATUS_CACHE) >= STATUS_CACHE_MAX) {
            PyDict_Clear(STATUS_CACHE);
        }
        if (PyDict_SetItem(STATUS_CACHE, src, result) < 0) {
            Py_DECREF(result);
            return NULL;
        }
    }
    return result;
}

static PyObject *
parse_response_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 1 || kwnames != NULL || !PyBytes_CheckExact(args[0])) {
        return fallback(F_PARSE_RESPONSE_LINE, args, nargs, kwnames);
    }
    PyObject *result = status_line(args[0]);
    if (result == NULL && !PyErr_Occurred()) {
        return fallback(F_PARSE_RESPONSE_LINE, args, nargs, kwnames);
    }
    return result;
}

/* ------------------------------------------------------------------------
 * parse_headers(src, isresponse=False, max_count=MAX_HEADER_COUNT) -> dict */

/* A request's host value: reg-name or an IPv6 literal, then [":" port]
 * (an IPvFuture literal is left to the reference). */
static int
good_host(const unsigned char *v, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    if (n > 0 && v[0] == '[') {
        /* "[" 1*( HEXDIG / ":" / "." ) "]" */
        for (i = 1; i < n && (HEX[v[i]] >= 0 || v[i] == ':' || v[i] == '.'); i++) {
        }
        if (i == 1 || i == n || v[i] != ']') {
            return 0;
        }
        i++;
    }
    else {
        while (i < n) {
            if (HOST[v[i]]) {
                i++;
            }
            else if (v[i] == '%' && n - i >= 3 && HEX[v[i + 1]] >= 0
                     && HEX[v[i + 2]] >= 0) {
                i += 3;
            }
            else {
                break;
            }
        }
    }
    if (i < n) {
        if (v[i] != ':') {
            return 0;
        }
        for (i++; i < n; i++) {
            if (v[i] < '0' || v[i] > '9') {
                return 0;
            }
        }
    }
    return 1;
}

/* Parse into *headers*; 1 when done, 0 when the reference must decide,
 * -1 with an exception set. */
static int
header_block(PyObject *headers, const unsigned char *src, Py_ssize_t len,
             int isresponse, Py_ssize_t max_count)
{
    Py_ssize_t count = 0;
    Py_ssize_t start = 0;
    int has_length = 0, has_coding = 0;
    while (start <= len) {
        /* One line: src[start:end], then CRLF (or the end of the block). */
        if (++count > max_count) {
            return 0;
        }
        Py_ssize_t colon = -1;
        Py_ssize_t end = start;
        while (end < len) {
            unsigned char c = src[end];
            if (FIELD[c]) {
                if (c == ':' && colon < 0) {
                    colon = end;
                }
                end++;
            }
            else if (c == '\r' && len - end >= 2 && src[end + 1] == '\n') {
                break;
            }
            else {
                return 0;
            }
        }
        if (colon <= start) {
            return 0;  /* no colon, or an empty name */
        }
        for (Py_ssize_t i = start; i < colon; i++) {
            if (!TCHAR[src[i]]) {
                return 0;
            }
        }
        Py_ssize_t vs = colon + 1, ve = end;
        while (vs < ve && (src[vs] == ' ' || src[vs] == '\t')) {
            vs++;
        }
        while (ve > vs && (src[ve - 1] == ' ' || src[ve - 1] == '\t')) {
            ve--;
        }
        const unsigned char *v = src + vs;
        Py_ssize_t vlen = ve - vs;
        PyObject *name = folded_name((const char *)src + start, colon - start);
        if (name == NULL) {
            return -1;
        }
        PyObject *value = NULL;
        int kind = special_kind((const char *)PyUnicode_1BYTE_DATA(name),
                                PyUnicode_GET_LENGTH(name));
        switch (kind) {
        case S_NONE:
            value = PyUnicode_DecodeLatin1((const char *)v, vlen, NULL);
            break;
        case S_CONTENT_LENGTH:
            if (vlen < 1 || vlen > MAX_CL_LEN) {
                break;
            }
            {
                long long n = 0;  /* at most 16 digits: below 2**63 */
                Py_ssize_t i;
                for (i = 0; i < vlen && v[i] >= '0' && v[i] <= '9'; i++) {
                    n = n * 10 + (v[i] - '0');
                }
                if (i == vlen) {
                    value = PyLong_FromLongLong(n);
                    has_length = 1;
                }
            }
            break;
        case S_TRANSFER_ENCODING:
            if (vlen == 7) {
                static const char chunked[] = "chunked";
                Py_ssize_t i;
                for (i = 0; i < 7; i++) {
                    unsigned char c = v[i];
                    if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != (unsigned char)chunked[i]) {
                        break;
                    }
                }
                if (i == 7) {
                    Py_INCREF(CHUNKED);
                    value = CHUNKED;
                    has_coding = 1;
                }
            }
            break;
        case S_HOST:
            if (isresponse || good_host(v, vlen)) {
                value = PyUnicode_DecodeLatin1((const char *)v, vlen, NULL);
            }
            break;
        case S_RANGE:
            if (isresponse) {
                value = PyUnicode_DecodeLatin1((const char *)v, vlen, NULL);
            }
            break;
        default:  /* content-range */
            break;
        }
        if (value == NULL) {
            Py_DECREF(name);
            return PyErr_Occurred() ? -1 : 0;
        }
        /* One lookup: a name already there keeps its first value, and the
         * dict does not grow (values may be shared objects: small ints,
         * 'chunked', so the size tells, not the value returned). */
        Py_ssize_t before = PyDict_GET_SIZE(headers);
        PyObject *kept = PyDict_SetDefault(headers, name, value);  /* borrowed */
        Py_DECREF(name);
        Py_DECREF(value);
        if (kept == NULL) {
            return -1;
        }
        if (PyDict_GET_SIZE(headers) == before) {
            return 0;  /* a repeat: joined or refused there */
        }
        if (has_length && has_coding) {
            return 0;  /* refused there */
        }
        start = end + 2;  /* past the CRLF; len + 2 after the last line */
    }
    return 1;
}

/* Header blocks seen before, as in degu._parse (clients send the same block
 * on every request of a connection): (src, isresponse, max_count) -> dict,
 * handed out as copies.  Only blocks parsed here go in. */
#define BLOCK_CACHE_MAX 1024  /* entries; cleared when full */
#define BLOCK_CACHE_LEN 1024  /* bytes: longer blocks are parsed every time */
static PyObject *BLOCK_CACHE;
static PyObject *DEFAULT_MAX_COUNT;  /* MAX_HEADER_COUNT as an int */

/* The dict for the header block *src* (a bytes object; *max_obj* is
 * *max_count* as an int, for the cache key), or NULL with no exception set
 * when the reference must decide. */
static PyObject *
headers_from(PyObject *src, int isresponse, PyObject *max_obj, Py_ssize_t max_count)
{
    Py_ssize_t len = PyBytes_GET_SIZE(src);
    if (len == 0) {
        return PyDict_New();
    }
    PyObject *key = NULL;
    if (len <= BLOCK_CACHE_LEN) {
        key = PyTuple_Pack(3, src, isresponse ? Py_True : Py_False, max_obj);
        if (key == NULL) {
            return NULL;
        }
        PyObject *cached = PyDict_GetItemWithError(BLOCK_CACHE, key);
        if (cached != NULL) {
            /* Owned while copying: an allocation may run a collection,
             * and with it code that changes the cache. */
            Py_INCREF(cached);
            Py_DECREF(key);
            PyObject *copy = PyDict_Copy(cached);
            Py_DECREF(cached);
            return copy;
        }
        if (PyErr_Occurred()) {
            Py_DECREF(key);
            return NULL;
        }
    }
    PyObject *headers = PyDict_New();
    if (headers == NULL) {
        Py_XDECREF(key);
        return NULL;
    }
    int done = header_block(headers, (const unsigned char *)PyBytes_AS_STRING(src), len,
                            isresponse, max_count);
    if (done > 0 && key != NULL) {
        /* The cache keeps a copy: the caller may change its dict. */
        PyObject *copy = PyDict_Copy(headers);
        if (copy == NULL) {
            done = -1;
        }
        else {
            if (PyDict_GET_SIZE(BLOCK_CACHE) >= BLOCK_CACHE_MAX) {
                PyDict_Clear(BLOCK_CACHE);
            }
            if (PyDict_SetItem(BLOCK_CACHE, key, copy) < 0) {
                done = -1;
            }
            Py_DECREF(copy);
        }
    }
    Py_XDECREF(key);
    if (done > 0) {
        return headers;
    }
    Py_DECREF(headers);
    return NULL;  /* an exception, or the reference decides */
}

static PyObject *
parse_headers(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 1 || nargs > 3 || kwnames != NULL || !PyBytes_CheckExact(args[0])) {
        return fallback(F_PARSE_HEADERS, args, nargs, kwnames);
    }
    int isresponse = 0;
    if (nargs > 1) {
        /* Only True or False: the reference hashes it (its cache key). */
        if (args[1] != Py_True && args[1] != Py_False) {
            return fallback(F_PARSE_HEADERS, args, nargs, kwnames);
        }
        isresponse = args[1] == Py_True;
    }
    Py_ssize_t max_count = MAX_HEADER_COUNT;
    if (nargs > 2) {
        if (!PyLong_CheckExact(args[2])) {
            return fallback(F_PARSE_HEADERS, args, nargs, kwnames);
        }
        max_count = PyLong_AsSsize_t(args[2]);
        if (max_count == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return fallback(F_PARSE_HEADERS, args, nargs, kwnames);
        }
    }
    PyObject *headers = headers_from(args[0], isresponse,
                                     nargs > 2 ? args[2] : DEFAULT_MAX_COUNT, max_count);
    if (headers == NULL && !PyErr_Occurred()) {
        return fallback(F_PARSE_HEADERS, args, nargs, kwnames);
    }
    return headers;
}

/* ------------------------------------------------------------------------
 * Chunk lines: parse_chunk(line) -> (size, extension), chunk_end(), format_chunk() */

/* The size of a chunk line without an extension: 1 to 16 hex digits, at
 * most MAX_IO_SIZE; -1 when the reference must decide. */
static Py_ssize_t
chunk_size(const unsigned char *src, Py_ssize_t len)
{
    if (len < 1 || len > MAX_CHUNK_SIZE_LEN) {
        return -1;
    }
    Py_ssize_t size = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        int digit = HEX[src[i]];
        if (digit < 0) {
            return -1;
        }
        if (size > MAX_IO_SIZE) {
            return -1;  /* already too big: no overflow from more digits */
        }
        size = size * 16 + digit;
    }
    return size > MAX_IO_SIZE ? -1 : size;
}

static PyObject *
parse_chunk(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 1 || kwnames != NULL || !PyBytes_CheckExact(args[0])) {
        return fallback(F_PARSE_CHUNK, args, nargs, kwnames);
    }
    Py_ssize_t size = chunk_size((const unsigned char *)PyBytes_AS_STRING(args[0]),
                                 PyBytes_GET_SIZE(args[0]));
    if (size < 0) {
        return fallback(F_PARSE_CHUNK, args, nargs, kwnames);
    }
    PyObject *number = PyLong_FromSsize_t(size);
    if (number == NULL) {
        return NULL;
    }
    PyObject *result = PyTuple_New(2);
    if (result == NULL) {
        Py_DECREF(number);
        return NULL;
    }
    Py_INCREF(Py_None);
    PyTuple_SET_ITEM(result, 0, number);
    PyTuple_SET_ITEM(result, 1, Py_None);
    return result;
}

/* First index of needle[0:nlen] in hay[pos:stop], or -1. */
static Py_ssize_t
find(const char *hay, Py_ssize_t pos, Py_ssize_t stop, const char *needle, Py_ssize_t nlen)
{
    for (Py_ssize_t i = pos; stop - i >= nlen; i++) {
        if (hay[i] == needle[0] && memcmp(hay + i, needle, (size_t)nlen) == 0) {
            return i;
        }
    }
    return -1;
}

static PyObject *
chunk_end(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 3 || kwnames != NULL || !PyLong_CheckExact(args[1])
            || !PyLong_CheckExact(args[2])) {
        return fallback(F_CHUNK_END, args, nargs, kwnames);
    }
    const char *buf;
    Py_ssize_t len;
    if (PyByteArray_CheckExact(args[0])) {
        buf = PyByteArray_AS_STRING(args[0]);
        len = PyByteArray_GET_SIZE(args[0]);
    }
    else if (PyBytes_CheckExact(args[0])) {
        buf = PyBytes_AS_STRING(args[0]);
        len = PyBytes_GET_SIZE(args[0]);
    }
    else {
        return fallback(F_CHUNK_END, args, nargs, kwnames);
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    Py_ssize_t stop = pos == -1 && PyErr_Occurred() ? -1 : PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return fallback(F_CHUNK_END, args, nargs, kwnames);
    }
    if (pos < 0 || stop < pos || stop > len) {
        return fallback(F_CHUNK_END, args, nargs, kwnames);
    }
    Py_ssize_t eol = find(buf, pos, stop, "\r\n", 2);
    if (eol < 0) {
        if (stop - pos >= MAX_LINE_LEN) {
            return fallback(F_CHUNK_END, args, nargs, kwnames);
        }
        Py_RETURN_NONE;
    }
    Py_ssize_t size = chunk_size((const unsigned char *)buf + pos, eol - pos);
    if (size < 0) {
        return fallback(F_CHUNK_END, args, nargs, kwnames);
    }
    if (size == 0) {
        Py_ssize_t end = find(buf, eol, stop, "\r\n\r\n", 4);
        if (end < 0) {
            Py_RETURN_NONE;
        }
        return PyLong_FromSsize_t(end + 4);
    }
    /* eol < stop <= len and size <= MAX_IO_SIZE: compare before adding. */
    if (size + 4 > stop - eol) {
        Py_RETURN_NONE;
    }
    Py_ssize_t end = eol + size + 4;
    if (buf[end - 2] != '\r' || buf[end - 1] != '\n') {
        return fallback(F_CHUNK_END, args, nargs, kwnames);
    }
    return PyLong_FromSsize_t(end);
}

static PyObject *
format_chunk(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 1 || kwnames != NULL || !PyTuple_CheckExact(args[0])
            || PyTuple_GET_SIZE(args[0]) != 2 || PyTuple_GET_ITEM(args[0], 0) != Py_None
            || !PyBytes_CheckExact(PyTuple_GET_ITEM(args[0], 1))) {
        return fallback(F_FORMAT_CHUNK, args, nargs, kwnames);
    }
    size_t size = (size_t)PyBytes_GET_SIZE(PyTuple_GET_ITEM(args[0], 1));
    /* Lower-case hex, no leading zero, then CRLF: written from the end. */
    char line[2 * sizeof(size_t) + 2];
    Py_ssize_t start = (Py_ssize_t)sizeof(line) - 2;
    line[start] = '\r';
    line[start + 1] = '\n';
    do {
        line[--start] = "0123456789abcdef"[size & 15];
        size >>= 4;
    } while (size != 0 && start > 0);
    return PyBytes_FromStringAndSize(line + start, (Py_ssize_t)sizeof(line) - start);
}

/* ------------------------------------------------------------------------
 * render_request(method, uri, headers), render_response(status, reason, headers, extra='') */

/* A str of code points below 256 (its latin-1 bytes are its 1-byte data). */
static int
latin1_str(PyObject *obj)
{
    if (!PyUnicode_CheckExact(obj)) {
        return 0;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(obj) < 0) {
        PyErr_Clear();
        return 0;
    }
#endif
    return PyUnicode_KIND(obj) == PyUnicode_1BYTE_KIND;
}

/* A field value or reason phrase we may send: latin-1, no control byte but
 * HTAB, no leading or trailing SP or HTAB. */
static int
good_value(PyObject *str)
{
    if (!latin1_str(str)) {
        return 0;
    }
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(str);
    Py_ssize_t n = PyUnicode_GET_LENGTH(str);
    if (n > 0 && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t')) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (BAD_TEXT[s[i]]) {
            return 0;
        }
    }
    return 1;
}

static int
good_name(PyObject *str)
{
    if (!latin1_str(str)) {
        return 0;
    }
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(str);
    Py_ssize_t n = PyUnicode_GET_LENGTH(str);
    if (n == 0) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!LOWER_TCHAR[s[i]]) {
            return 0;
        }
    }
    return 1;
}

/* The checked field lines of a header dict, sorted by name: line i is
 * names[i] ": " values[i] (names[i] borrowed from the sorted key list, which
 * is owned; values[i] owned), and the bytes they take on the wire.  A list
 * value is one line per item, as in degu._parse. */
typedef struct {
    Py_ssize_t count;  /* lines */
    PyObject *keys;    /* the sorted key list */
    PyObject *names[MAX_HEADER_COUNT];
    PyObject *values[MAX_HEADER_COUNT];
    Py_ssize_t size;
} lines_t;

static void
lines_clear(lines_t *lines)
{
    for (Py_ssize_t i = 0; i < lines->count; i++) {
        Py_CLEAR(lines->values[i]);
    }
    lines->count = 0;
    Py_CLEAR(lines->keys);
}

static int
add_size(Py_ssize_t *total, Py_ssize_t more)
{
    if (more < 0 || *total > PY_SSIZE_T_MAX - more) {
        return 0;
    }
    *total += more;
    return 1;
}

/* The str sent for one field value: a new reference, or NULL with no
 * exception set when the reference must decide (a value it refuses, or one
 * whose str() is not ours to call). */
static PyObject *
value_text(PyObject *value)
{
    if (PyUnicode_CheckExact(value)) {
        if (!good_value(value)) {
            return NULL;
        }
        Py_INCREF(value);
        return value;
    }
    if (PyLong_CheckExact(value)) {
        Py_INCREF(value);  /* owned while str() allocates */
        PyObject *text = PyObject_Str(value);  /* digits, maybe a "-" */
        Py_DECREF(value);
        if (text == NULL) {
            PyErr_Clear();  /* too many digits: said there */
            return NULL;
        }
        if (!latin1_str(text)) {
            Py_DECREF(text);
            return NULL;
        }
        return text;
    }
    return NULL;
}

/* Append the line name ": " value; 0 when the reference must decide. */
static int
add_line(lines_t *lines, PyObject *name, PyObject *value)
{
    if (lines->count >= MAX_HEADER_COUNT) {
        return 0;  /* too many lines: said there */
    }
    PyObject *text = value_text(value);
    if (text == NULL) {
        return 0;
    }
    lines->names[lines->count] = name;
    lines->values[lines->count] = text;
    lines->count++;
    /* "\r\n" name ": " value */
    return add_size(&lines->size, 4) && add_size(&lines->size, PyUnicode_GET_LENGTH(name))
           && add_size(&lines->size, PyUnicode_GET_LENGTH(text));
}

/* A field that may not be given as a list (degu._parse._SINGLE). */
static int
single_field(PyObject *name)
{
    return special_kind((const char *)PyUnicode_1BYTE_DATA(name),
                        PyUnicode_GET_LENGTH(name)) != S_NONE;
}

/* 1 when done, 0 when the reference must decide, -1 on an exception. */
static int
header_lines(PyObject *headers, lines_t *lines)
{
    lines->count = 0;
    lines->keys = NULL;
    lines->size = 0;
    if (!PyDict_CheckExact(headers)) {
        return 0;
    }
    Py_ssize_t n = PyDict_GET_SIZE(headers);
    if (n > MAX_HEADER_COUNT) {
        return 0;
    }
    lines->keys = PyDict_Keys(headers);
    if (lines->keys == NULL) {
        return -1;
    }
    if (PyList_GET_SIZE(lines->keys) != n) {
        lines_clear(lines);
        return 0;
    }
    int has_length = 0, has_coding = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyList_GET_ITEM(lines->keys, i);
        if (!good_name(name)) {
            lines_clear(lines);
            return 0;
        }
        Py_ssize_t len = PyUnicode_GET_LENGTH(name);
        const Py_UCS1 *s = PyUnicode_1BYTE_DATA(name);
        if (len == 14 && memcmp(s, "content-length", 14) == 0) {
            has_length = 1;
        }
        else if (len == 17 && memcmp(s, "transfer-encoding", 17) == 0) {
            has_coding = 1;
        }
    }
    if (has_length && has_coding) {
        lines_clear(lines);
        return 0;
    }
    /* Every key is an exact str: sorting runs no Python code. */
    if (PyList_Sort(lines->keys) < 0) {
        lines_clear(lines);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyList_GET_ITEM(lines->keys, i);
        PyObject *value = PyDict_GetItemWithError(headers, name);
        if (value == NULL) {
            int error = PyErr_Occurred() != NULL;
            lines_clear(lines);
            return error ? -1 : 0;
        }
        int done = 1;
        if (PyList_CheckExact(value)) {
            /* One line per item; never empty, never a framing or routing
             * field.  Nothing below runs Python code, so the list stays
             * as it is; it is owned while its items are turned to text. */
            Py_ssize_t items = PyList_GET_SIZE(value);
            if (items == 0 || single_field(name)) {
                done = 0;
            }
            else {
                Py_INCREF(value);
                for (Py_ssize_t k = 0; k < items && done; k++) {
                    done = add_line(lines, name, PyList_GET_ITEM(value, k));
                }
                Py_DECREF(value);
            }
        }
        else {
            done = add_line(lines, name, value);
        }
        if (!done) {
            lines_clear(lines);
            return 0;
        }
    }
    return 1;
}

static char *
put(char *dst, const void *src, Py_ssize_t len)
{
    if (len > 0) {
        memcpy(dst, src, (size_t)len);
    }
    return dst + len;
}

static char *
put_lines(char *dst, lines_t *lines)
{
    for (Py_ssize_t i = 0; i < lines->count; i++) {
        PyObject *name = lines->names[i];
        PyObject *value = lines->values[i];
        dst = put(dst, "\r\n", 2);
        dst = put(dst, PyUnicode_1BYTE_DATA(name), PyUnicode_GET_LENGTH(name));
        dst = put(dst, ": ", 2);
        dst = put(dst, PyUnicode_1BYTE_DATA(value), PyUnicode_GET_LENGTH(value));
    }
    return dst;
}

static PyObject *
render_request(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 3 || kwnames != NULL || !latin1_str(args[0]) || !latin1_str(args[1])) {
        return fallback(F_RENDER_REQUEST, args, nargs, kwnames);
    }
    PyObject *method = args[0], *uri = args[1];
    Py_ssize_t mlen = PyUnicode_GET_LENGTH(method);
    const Py_UCS1 *m = PyUnicode_1BYTE_DATA(method);
    int known = 0;
    for (int k = 0; k < METHOD_COUNT; k++) {
        if ((Py_ssize_t)strlen(METHOD_NAMES[k]) == mlen
                && memcmp(m, METHOD_NAMES[k], (size_t)mlen) == 0) {
            known = 1;
            break;
        }
    }
    Py_ssize_t ulen = PyUnicode_GET_LENGTH(uri);
    const Py_UCS1 *u = PyUnicode_1BYTE_DATA(uri);
    if (!known || ulen < 1) {
        return fallback(F_RENDER_REQUEST, args, nargs, kwnames);
    }
    for (Py_ssize_t i = 0; i < ulen; i++) {
        if (u[i] < 0x21 || u[i] > 0x7E) {
            return fallback(F_RENDER_REQUEST, args, nargs, kwnames);
        }
    }
    lines_t lines;
    int done = header_lines(args[2], &lines);
    if (done <= 0) {
        return done < 0 ? NULL : fallback(F_RENDER_REQUEST, args, nargs, kwnames);
    }
    /* method SP uri " HTTP/1.1" lines CRLF CRLF; method is 7 bytes at most */
    Py_ssize_t size = mlen + 10 + 4;
    if (!add_size(&size, ulen) || !add_size(&size, lines.size)) {
        lines_clear(&lines);
        return fallback(F_RENDER_REQUEST, args, nargs, kwnames);
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) {
        lines_clear(&lines);
        return NULL;
    }
    char *dst = PyBytes_AS_STRING(out);
    dst = put(dst, m, mlen);
    dst = put(dst, " ", 1);
    dst = put(dst, u, ulen);
    dst = put(dst, " HTTP/1.1", 9);
    dst = put_lines(dst, &lines);
    dst = put(dst, "\r\n\r\n", 4);
    lines_clear(&lines);
    assert(dst == PyBytes_AS_STRING(out) + size);
    return out;
}

static PyObject *
render_response(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 3 || nargs > 4 || kwnames != NULL || !PyLong_CheckExact(args[0])
            || !good_value(args[1]) || (nargs == 4 && !latin1_str(args[3]))) {
        return fallback(F_RENDER_RESPONSE, args, nargs, kwnames);
    }
    int overflow = 0;
    long status = PyLong_AsLongAndOverflow(args[0], &overflow);
    if (overflow || status < 100 || status > 599) {
        PyErr_Clear();
        return fallback(F_RENDER_RESPONSE, args, nargs, kwnames);
    }
    PyObject *reason = args[1];
    Py_ssize_t rlen = PyUnicode_GET_LENGTH(reason);
    if (rlen < 1) {
        return fallback(F_RENDER_RESPONSE, args, nargs, kwnames);
    }
    Py_ssize_t elen = nargs == 4 ? PyUnicode_GET_LENGTH(args[3]) : 0;
    lines_t lines = {0, NULL, {NULL}, {NULL}, 0};
    PyObject *headers = args[2];
    if (!(PyDict_CheckExact(headers) && PyDict_GET_SIZE(headers) == 0)) {
        int done = header_lines(headers, &lines);
        if (done <= 0) {
            return done < 0 ? NULL : fallback(F_RENDER_RESPONSE, args, nargs, kwnames);
        }
    }
    /* "HTTP/1.1 SSS " reason lines extra CRLF CRLF */
    Py_ssize_t size = 13 + 4;
    if (!add_size(&size, rlen) || !add_size(&size, lines.size) || !add_size(&size, elen)) {
        lines_clear(&lines);
        return fallback(F_RENDER_RESPONSE, args, nargs, kwnames);
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) {
        lines_clear(&lines);
        return NULL;
    }
    char *dst = PyBytes_AS_STRING(out);
    char code[4] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10), ' '};
    dst = put(dst, "HTTP/1.1 ", 9);
    dst = put(dst, code, 4);
    dst = put(dst, PyUnicode_1BYTE_DATA(reason), rlen);
    dst = put_lines(dst, &lines);
    if (elen > 0) {
        dst = put(dst, PyUnicode_1BYTE_DATA(args[3]), elen);
    }
    dst = put(dst, "\r\n\r\n", 4);
    lines_clear(&lines);
    assert(dst == PyBytes_AS_STRING(out) + size);
    return out;
}

/* ------------------------------------------------------------------------
 * The server's response head: response_head(response, method, connection, date)
 *
 * Not a replacement for a function of degu/_parse.py, but a shortcut past
 * several: for the common response, the bytes that the server's checks
 * (_check_response), framing (response_output, framing_line) and
 * render_response(status, reason, headers, extra) would give, with the body
 * appended when it is small.  For anything else it returns None and the
 * server takes its ordinary path, which stays the reference: so every
 * exception, with its message, is still raised by the pure-Python code.
 *
 * The common response: an exact 4-tuple (status, reason, headers, body), an
 * exact int status 200-599 but 204 and 304, a reason and a header dict
 * render_response() takes without its reference, no content-length,
 * transfer-encoding or connection key (the server's own fields), and a
 * body that is None or exact bytes of at most MAX_IO_SIZE; a request
 * method other than HEAD.  The result is, as in degu/server.py:
 *
 *     status line, the app's fields sorted, content-length: N,
 *     *connection* (a line the server chose, or ''), *date* unless the app
 *     gave one (RFC 9110 section 6.6.1), CRLF CRLF, then the body when it
 *     is at most JOIN_MAX bytes (one send, as in degu._io.write_message)
 *
 * Nothing here runs Python code (every key is an exact str before a lookup,
 * an int value's str() is C), so the app's dict cannot change under it. */

#define JOIN_MAX (32 * 1024)  /* degu._parse.BUF_LEN */

/* 1 when the exact str *key* is name[0:len]. */
static int
key_is(PyObject *key, const char *name, Py_ssize_t len)
{
    return PyUnicode_GET_LENGTH(key) == len
           && memcmp(PyUnicode_1BYTE_DATA(key), name, (size_t)len) == 0;
}

static PyObject *
response_head(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 4 || kwnames != NULL || !PyTuple_CheckExact(args[0])
            || PyTuple_GET_SIZE(args[0]) != 4 || !latin1_str(args[1])
            || !latin1_str(args[2]) || !latin1_str(args[3])) {
        Py_RETURN_NONE;
    }
    PyObject *status_obj = PyTuple_GET_ITEM(args[0], 0);
    PyObject *reason = PyTuple_GET_ITEM(args[0], 1);
    PyObject *headers = PyTuple_GET_ITEM(args[0], 2);
    PyObject *body = PyTuple_GET_ITEM(args[0], 3);
    /* RFC 9110 section 9.3.2: no content on HEAD. */
    if (key_is(args[1], "HEAD", 4) || !PyLong_CheckExact(status_obj) || !good_value(reason)
            || PyUnicode_GET_LENGTH(reason) < 1 || !PyDict_CheckExact(headers)) {
        Py_RETURN_NONE;
    }
    int overflow = 0;
    long status = PyLong_AsLongAndOverflow(status_obj, &overflow);
    /* RFC 9110 sections 15.3.5 and 15.4.5: no content on 204 and 304. */
    if (overflow || status < 200 || status > 599 || status == 204 || status == 304) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    Py_ssize_t blen = 0;
    if (body != Py_None) {
        if (!PyBytes_CheckExact(body) || PyBytes_GET_SIZE(body) > MAX_IO_SIZE) {
            Py_RETURN_NONE;
        }
        blen = PyBytes_GET_SIZE(body);
    }
    /* The server's own fields: the reference decides when the app gave
     * one.  A key that is not an exact str is left to header_lines(). */
    int has_date = 0;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(headers, &pos, &key, &value)) {
        if (!latin1_str(key)) {
            continue;
        }
        if (key_is(key, "content-length", 14) || key_is(key, "transfer-encoding", 17)
                || key_is(key, "connection", 10)) {
            Py_RETURN_NONE;
        }
        if (key_is(key, "date", 4)) {
            has_date = 1;
        }
    }
    lines_t lines = {0, NULL, {NULL}, {NULL}, 0};
    if (PyDict_GET_SIZE(headers) != 0) {
        int done = header_lines(headers, &lines);
        if (done <= 0) {
            if (done < 0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
    }
    char length[24];  /* the content-length value */
    int llen = PyOS_snprintf(length, sizeof(length), "%zd", blen);
    Py_ssize_t rlen = PyUnicode_GET_LENGTH(reason);
    Py_ssize_t clen = PyUnicode_GET_LENGTH(args[2]);
    Py_ssize_t dlen = has_date ? 0 : PyUnicode_GET_LENGTH(args[3]);
    Py_ssize_t join = blen <= JOIN_MAX ? blen : 0;
    /* "HTTP/1.1 SSS " reason lines "\r\ncontent-length: " N connection
     * date CRLF CRLF [body] */
    Py_ssize_t size = 13 + 18 + 4;
    if (llen <= 0 || !add_size(&size, (Py_ssize_t)llen) || !add_size(&size, rlen)
            || !add_size(&size, lines.size) || !add_size(&size, clen)
            || !add_size(&size, dlen) || !add_size(&size, join)) {
        lines_clear(&lines);
        Py_RETURN_NONE;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) {
        lines_clear(&lines);
        return NULL;
    }
    char *dst = PyBytes_AS_STRING(out);
    char code[4] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10), ' '};
    dst = put(dst, "HTTP/1.1 ", 9);
    dst = put(dst, code, 4);
    dst = put(dst, PyUnicode_1BYTE_DATA(reason), rlen);
    dst = put_lines(dst, &lines);
    dst = put(dst, "\r\ncontent-length: ", 18);
    dst = put(dst, length, llen);
    dst = put(dst, PyUnicode_1BYTE_DATA(args[2]), clen);
    dst = put(dst, PyUnicode_1BYTE_DATA(args[3]), dlen);
    dst = put(dst, "\r\n\r\n", 4);
    if (join > 0) {
        dst = put(dst, PyBytes_AS_STRING(body), join);
    }
    lines_clear(&lines);
    assert(dst == PyBytes_AS_STRING(out) + size);
    return out;
}

/* ------------------------------------------------------------------------
 * Whole preambles out of a transport's buffer:
 *   scan_request(buf, start, stop, max_preamble, max_header_count)
 *     -> (end, kind, length, request) or None
 *   scan_response(buf, start, stop, max_preamble, max_header_count, method)
 *     -> (end, kind, length, version, status, reason, headers) or None
 *
 * The C core's degu._io readers: Transport.read_block(), the partition of
 * the preamble, the start-line and header parsers above and the framing
 * decision of degu._framing (kind and length as request_framing() and
 * response_framing() give them), in one call on the buffer the transport
 * received into.  The request is a degu.base.Request as _new_request()
 * makes it, with no body yet (the reader puts in the one kind says), made
 * here once _bind_request() has checked the class's slots.  The preamble
 * starts at buf[start]; *end* is where the next one would start, past its
 * CRLFCRLF (what read_block() leaves in Transport._start).  None means
 * "not the common valid case": no CRLFCRLF within max_preamble bytes of
 * start before stop, an empty line first, a request-target that is not
 * origin-form, anything the parsers above hand to their reference, a limit
 * or a method of an odd type.  The reader then reads and parses as it does
 * on the pure-Python core, so every error, limit, EOF and timeout is the
 * one that path gives.  Offsets outside the buffer are a ValueError:
 * nothing is read outside buf[start:stop].
 *
 * One call instead of the Python path's steps: 6,050 instructions fewer
 * per request on the server, 5,970 per response on the client, before the
 * Request made here and the memo below (callgrind over
 * benchmarks/hotpath.py). */

/* degu._framing's kinds. */
enum { K_NO_BODY = 0, K_LENGTH = 1, K_CHUNKED = 2, K_CLOSE = 3 };

/* Requests made here: the class and what _bind_request() found of it.  In
 * Python a Request is a call of _new_request(), 'object.__new__(Request)'
 * and nine slot stores; here it is tp_alloc() and nine stores at the slots'
 * offsets, checked once: each name a writable object slot of the class
 * itself, within its instances.  2,100 instructions fewer per request on
 * the server, the unpacking of a longer tuple included (callgrind over
 * benchmarks/hotpath.py). */
#ifndef Py_T_OBJECT_EX  /* before Python 3.12 */
#include <structmember.h>
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_READONLY READONLY
#endif

static const char *const REQUEST_SLOTS[] = {
    "_method", "_uri", "_headers", "_body", "_mount", "_path", "_query", "_version", "_origin",
};
#define REQUEST_SLOT_COUNT ((int)(sizeof(REQUEST_SLOTS) / sizeof(REQUEST_SLOTS[0])))
static PyTypeObject *REQUEST_TYPE;
static PyObject *NO_ORIGIN;  /* the _origin of a new request: degu._body._NO_ORIGIN */
static Py_ssize_t REQUEST_OFFSET[REQUEST_SLOT_COUNT];

static PyObject *
bind_request(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyType_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "_bind_request: need (Request, origin)");
        return NULL;
    }
    PyTypeObject *cls = (PyTypeObject *)args[0];
    /* Made as object.__new__(cls) makes it: no __new__ of its own, nothing
     * abstract, the generic allocator. */
    if (cls->tp_new != PyBaseObject_Type.tp_new || cls->tp_alloc != PyType_GenericAlloc
            || (cls->tp_flags & Py_TPFLAGS_IS_ABSTRACT)) {
        PyErr_Format(PyExc_ValueError, "_bind_request: %R is not made by object.__new__()",
                     args[0]);
        return NULL;
    }
    Py_ssize_t offsets[REQUEST_SLOT_COUNT];
    for (int k = 0; k < REQUEST_SLOT_COUNT; k++) {
        PyObject *descr = PyDict_GetItemString(cls->tp_dict, REQUEST_SLOTS[k]);  /* borrowed */
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)
                || PyDescr_TYPE(descr) != cls) {
            PyErr_Format(PyExc_ValueError, "_bind_request: %R has no slot %s", args[0],
                         REQUEST_SLOTS[k]);
            return NULL;
        }
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != Py_T_OBJECT_EX || (member->flags & Py_READONLY)
                || member->offset < (Py_ssize_t)sizeof(PyObject)
                || member->offset > cls->tp_basicsize - (Py_ssize_t)sizeof(PyObject *)) {
            PyErr_Format(PyExc_ValueError, "_bind_request: %R has an odd slot %s", args[0],
                         REQUEST_SLOTS[k]);
            return NULL;
        }
        offsets[k] = member->offset;
    }
    memcpy(REQUEST_OFFSET, offsets, sizeof(offsets));
    Py_INCREF(cls);
    Py_XSETREF(REQUEST_TYPE, cls);
    Py_INCREF(args[1]);
    Py_XSETREF(NO_ORIGIN, args[1]);
    Py_RETURN_NONE;
}

/* A Request with no body, as degu._body._new_request() makes it: *parts*
 * are request_line()'s (method, uri, path, query, version), *path* a fresh
 * list. */
static PyObject *
new_request(PyObject *parts, PyObject *path, PyObject *headers)
{
    /* The class and its offsets as they are now: an allocation may run a
     * collection, and with it code that binds another class. */
    PyTypeObject *cls = REQUEST_TYPE;
    Py_ssize_t offsets[REQUEST_SLOT_COUNT];
    memcpy(offsets, REQUEST_OFFSET, sizeof(offsets));
    Py_INCREF(cls);
    PyObject *mount = PyList_New(0);
    PyObject *request = mount == NULL ? NULL : cls->tp_alloc(cls, 0);
    Py_DECREF(cls);  /* the instance holds its class */
    if (request == NULL) {
        Py_XDECREF(mount);
        return NULL;
    }
    PyObject *values[REQUEST_SLOT_COUNT] = {
        PyTuple_GET_ITEM(parts, 0), PyTuple_GET_ITEM(parts, 1), headers, Py_None, mount,
        path, PyTuple_GET_ITEM(parts, 3), PyTuple_GET_ITEM(parts, 4),
        NO_ORIGIN,
    };
    for (int k = 0; k < REQUEST_SLOT_COUNT; k++) {
        PyObject **slot = (PyObject **)((char *)request + offsets[k]);
        Py_INCREF(values[k]);
        Py_XSETREF(*slot, values[k]);  /* NULL from tp_alloc() */
    }
    Py_DECREF(mount);
    return request;
}

/* 'transfer-encoding' and 'content-length' (borrowed from COMMON_STR). */
static PyObject *TE_STR;
static PyObject *CL_STR;

/* One scan's arguments: the buffer held (it cannot be resized meanwhile),
 * and the offsets and limits as sizes. */
typedef struct {
    Py_buffer view;
    Py_ssize_t start;
    Py_ssize_t stop;
    Py_ssize_t limit;      /* max_preamble */
    Py_ssize_t max_count;  /* max_header_count */
} scan_t;

/* 1 with *scan* filled in (release scan->view), 0 when the Python path must
 * decide (an odd limit), -1 with an exception set. */
static int
scan_args(const char *name, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
          Py_ssize_t want, scan_t *scan)
{
    if (nargs != want || kwnames != NULL) {
        PyErr_Format(PyExc_TypeError, "%s: need %zd positional arguments; got %zd%s",
                     name, want, nargs, kwnames != NULL ? " and keywords" : "");
        return -1;
    }
    if (!PyLong_Check(args[1]) || !PyLong_Check(args[2])) {
        PyErr_Format(PyExc_TypeError, "%s: need int offsets; got %R, %R", name,
                     (PyObject *)Py_TYPE(args[1]), (PyObject *)Py_TYPE(args[2]));
        return -1;
    }
    scan->start = PyLong_AsSsize_t(args[1]);
    if (scan->start == -1 && PyErr_Occurred()) {
        return -1;
    }
    scan->stop = PyLong_AsSsize_t(args[2]);
    if (scan->stop == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (!PyLong_CheckExact(args[3]) || !PyLong_CheckExact(args[4])) {
        return 0;
    }
    scan->limit = PyLong_AsSsize_t(args[3]);
    scan->max_count = PyLong_AsSsize_t(args[4]);
    if ((scan->limit == -1 || scan->max_count == -1) && PyErr_Occurred()) {
        PyErr_Clear();  /* beyond a Py_ssize_t: the Python path's business */
        return 0;
    }
    if (PyObject_GetBuffer(args[0], &scan->view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (scan->start < 0 || scan->start > scan->stop || scan->stop > scan->view.len) {
        PyErr_Format(PyExc_ValueError,
                     "%s: need 0 <= start <= stop <= len(buf); got %zd, %zd, %zd",
                     name, scan->start, scan->stop, scan->view.len);
        PyBuffer_Release(&scan->view);
        return -1;
    }
    return 1;
}

/* Where the preamble at buf[start] ends (its CRLFCRLF), and in *line_end*
 * where its first line does (its first CRLF); -1 when there is none before
 * stop, or none that read_block() would take: the preamble, CRLFCRLF
 * included, must fit in limit bytes.  memchr() for each CR: one per line. */
static Py_ssize_t
preamble_end(const char *buf, const scan_t *scan, Py_ssize_t *line_end)
{
    Py_ssize_t start = scan->start;
    if (scan->limit < 4) {
        return -1;
    }
    /* bound - 4 is the last place a CRLFCRLF may start; no overflow, as
     * limit < stop - start <= stop in the first branch. */
    Py_ssize_t bound = scan->stop - start > scan->limit ? start + scan->limit : scan->stop;
    *line_end = -1;
    Py_ssize_t i = start;
    while (bound - i >= 4) {
        const char *cr = memchr(buf + i, '\r', (size_t)(bound - i - 3));
        if (cr == NULL) {
            return -1;
        }
        i = cr - buf;
        if (buf[i + 1] == '\n') {
            if (*line_end < 0) {
                *line_end = i;
            }
            if (buf[i + 2] == '\r' && buf[i + 3] == '\n') {
                return i;
            }
        }
        i++;
    }
    return -1;
}

/* The scanners' memo: request lines, status lines and header blocks seen
 * before, found by their bytes in the buffer.  The dict caches above need
 * a bytes object to look one up, and hash it with SipHash: 2,100
 * instructions more per request on the server, 1,400 per response on the
 * client (callgrind over benchmarks/hotpath.py).  Each table is
 * direct-mapped: a source has one slot, and the next source that lands
 * there replaces it.  So a peer that sends colliding sources only causes
 * misses (the parse above, then a replaced entry), never a longer search,
 * and the tables never grow.  A source refused here (handed to the Python
 * path) is kept too, as None: a client's range field or a proxy's
 * absolute-form targets, repeated on every request, then cost a lookup,
 * not a parse that fails again.  A request with a range field takes 1,970
 * instructions more through a refused scan and the Python path than
 * through the Python path alone, where it took 4,130 more without its
 * refusal kept. */
#define MEMO_BITS 8
#define MEMO_SLOTS (1 << MEMO_BITS)

typedef struct {
    PyObject *src;         /* the source, a bytes object; NULL while the slot is empty */
    PyObject *value;       /* what it parsed to, kept private; None: refused */
    Py_ssize_t max_count;  /* a block refused: the max_count it was refused under */
} memo_t;

static memo_t LINE_MEMO[MEMO_SLOTS];      /* request lines: (method, uri, path as a tuple, ...) */
static memo_t STATUS_MEMO[MEMO_SLOTS];    /* status lines: (version, status, reason) */
static memo_t BLOCK_MEMO[2][MEMO_SLOTS];  /* header blocks of requests [0], responses [1] */

/* The slot of src[0:len] in a table: eight bytes at a time, multiplied,
 * folded, and the top bits kept (Fibonacci hashing). */
static memo_t *
memo_slot(memo_t *table, const char *src, Py_ssize_t len)
{
    const uint64_t k = 0x9E3779B97F4A7C15u;
    uint64_t h = k ^ (uint64_t)len;
    Py_ssize_t i = 0;
    for (; len - i >= 8; i += 8) {
        uint64_t word;
        memcpy(&word, src + i, 8);
        h = (h ^ word) * k;
        h ^= h >> 29;
    }
    uint64_t word = 0;
    memcpy(&word, src + i, (size_t)(len - i));
    h = (h ^ word) * k;
    return &table[(h ^ (h >> 29)) * k >> (64 - MEMO_BITS)];
}

/* Whether *slot* holds src[0:len]. */
static int
memo_holds(const memo_t *slot, const char *src, Py_ssize_t len)
{
    return slot->src != NULL && PyBytes_GET_SIZE(slot->src) == len
           && memcmp(PyBytes_AS_STRING(slot->src), src, (size_t)len) == 0;
}

/* *slot* holds *src* -> *value* from now on. */
static void
memo_keep(memo_t *slot, PyObject *src, PyObject *value)
{
    Py_INCREF(src);
    Py_INCREF(value);
    Py_XSETREF(slot->src, src);
    Py_XSETREF(slot->value, value);
}

/* The framing field strings, found once. */
static int
framing_names(void)
{
    if (TE_STR != NULL) {
        return 0;
    }
    for (int k = 0; k < COMMON_COUNT; k++) {
        if (strcmp(COMMON_NAMES[k], "transfer-encoding") == 0) {
            TE_STR = COMMON_STR[k];
        }
        else if (strcmp(COMMON_NAMES[k], "content-length") == 0) {
            CL_STR = COMMON_STR[k];
        }
    }
    if (TE_STR == NULL || CL_STR == NULL) {
        PyErr_SetString(PyExc_SystemError, "degu._cparse: no framing field names");
        return -1;
    }
    return 0;
}

/* The framing of a message with *headers* parsed above (a content-length is
 * an int, a transfer-encoding 'chunked', never both): *kind*, and *length*
 * (a new reference) for K_LENGTH; -1 with an exception set.  *otherwise*
 * is the kind without a framing field. */
static int
framing(PyObject *headers, int otherwise, int *kind, PyObject **length)
{
    PyObject *value = PyDict_GetItemWithError(headers, TE_STR);
    if (value != NULL) {
        *kind = K_CHUNKED;
        return 0;
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    value = PyDict_GetItemWithError(headers, CL_STR);
    if (value != NULL) {
        Py_INCREF(value);
        *length = value;
        *kind = K_LENGTH;
        return 0;
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    *kind = otherwise;
    return 0;
}

/* The header block buf[line_end + 2:end] as a dict, {} when there is none;
 * NULL with no exception set when the reference must decide. */
static PyObject *
scanned_headers(const char *buf, Py_ssize_t line_end, Py_ssize_t end, int isresponse,
                PyObject *max_obj, Py_ssize_t max_count)
{
    if (line_end >= end) {
        return PyDict_New();
    }
    const char *src = buf + line_end + 2;
    Py_ssize_t len = end - line_end - 2;
    memo_t *slot = NULL;
    if (len <= BLOCK_CACHE_LEN) {
        slot = memo_slot(BLOCK_MEMO[isresponse], src, len);
        /* A block parsed here has one field per line, and max_count is
         * the one limit on it that depends on the call. */
        if (memo_holds(slot, src, len)) {
            if (slot->value == Py_None) {
                /* Refused under a limit at least as high: refused now. */
                if (max_count <= slot->max_count) {
                    return NULL;
                }
            }
            else if (PyDict_GET_SIZE(slot->value) <= max_count) {
                PyObject *kept = slot->value;
                Py_INCREF(kept);  /* owned while copying, as in headers_from() */
                PyObject *copy = PyDict_Copy(kept);
                Py_DECREF(kept);
                return copy;
            }
        }
    }
    PyObject *block = PyBytes_FromStringAndSize(src, len);
    if (block == NULL) {
        return NULL;
    }
    PyObject *headers = headers_from(block, isresponse, max_obj, max_count);
    if (headers != NULL && slot != NULL) {
        PyObject *copy = PyDict_Copy(headers);  /* the caller may change its dict */
        if (copy == NULL) {
            Py_CLEAR(headers);
        }
        else {
            memo_keep(slot, block, copy);
            Py_DECREF(copy);
        }
    }
    else if (slot != NULL && !PyErr_Occurred()) {
        memo_keep(slot, block, Py_None);
        slot->max_count = max_count;
    }
    Py_DECREF(block);
    return headers;
}

/* The request line buf[start:end] as request_line() gives it, and in *path*
 * a fresh path list; NULL with no exception set when the reference must
 * decide. */
static PyObject *
scanned_request_line(const char *buf, Py_ssize_t start, Py_ssize_t end, PyObject **path)
{
    const char *src = buf + start;
    Py_ssize_t len = end - start;
    memo_t *slot = NULL;
    PyObject *parts;
    if (len <= LINE_CACHE_LEN) {
        slot = memo_slot(LINE_MEMO, src, len);
        if (memo_holds(slot, src, len)) {
            if (slot->value == Py_None) {
                return NULL;  /* refused before */
            }
            parts = slot->value;
            Py_INCREF(parts);
            /* The list by hand: 100 instructions fewer than PySequence_List(). */
            PyObject *frozen = PyTuple_GET_ITEM(parts, 2);
            Py_ssize_t count = PyTuple_GET_SIZE(frozen);
            *path = PyList_New(count);
            if (*path == NULL) {
                Py_CLEAR(parts);
                return NULL;
            }
            for (Py_ssize_t i = 0; i < count; i++) {
                PyObject *segment = PyTuple_GET_ITEM(frozen, i);
                Py_INCREF(segment);
                PyList_SET_ITEM(*path, i, segment);
            }
            return parts;
        }
    }
    PyObject *line = PyBytes_FromStringAndSize(src, len);
    if (line == NULL) {
        return NULL;
    }
    parts = request_line(line);
    if (parts != NULL && slot != NULL) {
        /* Kept with the path as a tuple, as in LINE_CACHE. */
        PyObject *kept = PyTuple_New(5);
        PyObject *frozen = kept == NULL ? NULL : PyList_AsTuple(PyTuple_GET_ITEM(parts, 2));
        if (frozen == NULL) {
            Py_XDECREF(kept);
            Py_CLEAR(parts);
        }
        else {
            for (Py_ssize_t i = 0; i < 5; i++) {
                PyObject *item = i == 2 ? frozen : PyTuple_GET_ITEM(parts, i);
                if (i != 2) {
                    Py_INCREF(item);
                }
                PyTuple_SET_ITEM(kept, i, item);
            }
            memo_keep(slot, line, kept);
            Py_DECREF(kept);
        }
    }
    else if (slot != NULL && !PyErr_Occurred()) {
        memo_keep(slot, line, Py_None);
    }
    Py_DECREF(line);
    if (parts != NULL) {
        *path = PyTuple_GET_ITEM(parts, 2);  /* request_line() made it for this call */
        Py_INCREF(*path);
    }
    return parts;
}

/* The status line buf[start:end] as status_line() gives it; NULL with no
 * exception set when the reference must decide. */
static PyObject *
scanned_status_line(const char *buf, Py_ssize_t start, Py_ssize_t end)
{
    const char *src = buf + start;
    Py_ssize_t len = end - start;
    memo_t *slot = NULL;
    if (len <= STATUS_CACHE_LEN) {
        slot = memo_slot(STATUS_MEMO, src, len);
        if (memo_holds(slot, src, len)) {
            if (slot->value == Py_None) {
                return NULL;  /* refused before */
            }
            Py_INCREF(slot->value);  /* immutable: shared, as STATUS_CACHE's are */
            return slot->value;
        }
    }
    PyObject *line = PyBytes_FromStringAndSize(src, len);
    if (line == NULL) {
        return NULL;
    }
    PyObject *parts = status_line(line);
    if (slot != NULL && (parts != NULL || !PyErr_Occurred())) {
        memo_keep(slot, line, parts != NULL ? parts : Py_None);
    }
    Py_DECREF(line);
    return parts;
}

static PyObject *
scan_request(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    scan_t scan;
    int got = scan_args("scan_request", args, nargs, kwnames, 5, &scan);
    if (got <= 0) {
        if (got < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (REQUEST_TYPE == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "degu._cparse.scan_request: no Request class; call _bind_request() first");
        PyBuffer_Release(&scan.view);
        return NULL;
    }
    if (framing_names() < 0) {
        PyBuffer_Release(&scan.view);
        return NULL;
    }
    const char *buf = (const char *)scan.view.buf;
    PyObject *parts = NULL, *path = NULL, *headers = NULL, *length = NULL, *result = NULL;
    Py_ssize_t line_end;
    Py_ssize_t end = preamble_end(buf, &scan, &line_end);
    /* Empty lines first (RFC 9112 section 2.2) are the Python path's. */
    if (end < 0 || buf[scan.start] == '\r') {
        goto done;
    }
    /* Origin-form targets alone get through (RFC 9112 section 3.2.1): the
     * others have a host to replace (section 3.2.2). */
    parts = scanned_request_line(buf, scan.start, line_end, &path);
    if (parts == NULL) {
        goto done;
    }
    /* A range on a method but GET is dropped there (RFC 9110 section 14.2);
     * a request's range is the reference's, so none gets through here. */
    headers = scanned_headers(buf, line_end, end, 0, args[4], scan.max_count);
    if (headers == NULL) {
        goto done;
    }
    int kind;
    if (framing(headers, K_NO_BODY, &kind, &length) < 0) {
        goto done;
    }
    PyObject *request = new_request(parts, path, headers);
    if (request == NULL) {
        goto done;
    }
    result = PyTuple_New(4);
    if (result == NULL) {
        Py_DECREF(request);
        goto done;
    }
    PyTuple_SET_ITEM(result, 3, request);
    PyObject *stop = PyLong_FromSsize_t(end + 4);
    if (stop == NULL) {
        Py_CLEAR(result);
        goto done;
    }
    PyTuple_SET_ITEM(result, 0, stop);
    PyTuple_SET_ITEM(result, 1, PyLong_FromLong(kind));  /* a small int: cannot fail */
    if (length == NULL) {
        Py_INCREF(Py_None);
        length = Py_None;
    }
    PyTuple_SET_ITEM(result, 2, length);
    length = NULL;
done:
    PyBuffer_Release(&scan.view);
    Py_XDECREF(parts);
    Py_XDECREF(path);
    Py_XDECREF(headers);
    Py_XDECREF(length);
    if (result == NULL && !PyErr_Occurred()) {
        Py_RETURN_NONE;
    }
    return result;
}

static PyObject *
scan_response(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    scan_t scan;
    int got = scan_args("scan_response", args, nargs, kwnames, 6, &scan);
    if (got <= 0) {
        if (got < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (framing_names() < 0) {
        PyBuffer_Release(&scan.view);
        return NULL;
    }
    const char *buf = (const char *)scan.view.buf;
    PyObject *parts = NULL, *headers = NULL, *length = NULL, *result = NULL;
    Py_ssize_t line_end;
    Py_ssize_t end = preamble_end(buf, &scan, &line_end);
    if (end < 0 || end == scan.start || !PyUnicode_CheckExact(args[5])) {
        goto done;
    }
    parts = scanned_status_line(buf, scan.start, line_end);  /* (version, status, reason) */
    if (parts == NULL) {
        goto done;
    }
    headers = scanned_headers(buf, line_end, end, 1, args[4], scan.max_count);
    if (headers == NULL) {
        goto done;
    }
    /* No body after HEAD, 1xx, 204 and 304 whatever the fields say; without
     * a framing field, until the server closes (RFC 9112 section 6.3). */
    long status = PyLong_AsLong(PyTuple_GET_ITEM(parts, 1));  /* 100 to 599 */
    int kind = K_NO_BODY;
    if (!(status < 200 || status == 204 || status == 304
          || PyUnicode_CompareWithASCIIString(args[5], "HEAD") == 0)) {
        if (framing(headers, K_CLOSE, &kind, &length) < 0) {
            goto done;
        }
    }
    result = PyTuple_New(7);
    if (result == NULL) {
        goto done;
    }
    PyObject *stop = PyLong_FromSsize_t(end + 4);
    if (stop == NULL) {
        Py_CLEAR(result);
        goto done;
    }
    PyTuple_SET_ITEM(result, 0, stop);
    PyTuple_SET_ITEM(result, 1, PyLong_FromLong(kind));  /* a small int: cannot fail */
    if (length == NULL) {
        Py_INCREF(Py_None);
        length = Py_None;
    }
    PyTuple_SET_ITEM(result, 2, length);
    length = NULL;
    for (int k = 0; k < 3; k++) {
        PyObject *item = PyTuple_GET_ITEM(parts, k);
        Py_INCREF(item);
        PyTuple_SET_ITEM(result, 3 + k, item);
    }
    PyTuple_SET_ITEM(result, 6, headers);
    headers = NULL;
done:
    PyBuffer_Release(&scan.view);
    Py_XDECREF(parts);
    Py_XDECREF(headers);
    Py_XDECREF(length);
    if (result == NULL && !PyErr_Occurred()) {
        Py_RETURN_NONE;
    }
    return result;
}

/* ------------------------------------------------------------------------
 * _bind(reference): hand over the pure-Python functions. */

static PyObject *
bind(PyObject *self, PyObject *mapping)
{
    if (!PyDict_Check(mapping)) {
        PyErr_SetString(PyExc_TypeError, "_bind: need a dict of the reference functions");
        return NULL;
    }
    PyObject *found[F_COUNT];
    for (int k = 0; k < F_COUNT; k++) {
        found[k] = PyDict_GetItemString(mapping, NAMES[k]);  /* borrowed */
        if (found[k] == NULL || !PyCallable_Check(found[k])) {
            PyErr_Format(PyExc_ValueError, "_bind: no reference function %s", NAMES[k]);
            return NULL;
        }
    }
    for (int k = 0; k < F_COUNT; k++) {
        Py_INCREF(found[k]);
        Py_XSETREF(reference[k], found[k]);
    }
    Py_RETURN_NONE;
}

#define FAST (METH_FASTCALL | METH_KEYWORDS)
#define FUNC(name) (PyCFunction)(void (*)(void))(name)

static PyMethodDef methods[] = {
    {"parse_request_line", FUNC(parse_request_line), FAST,
     "parse_request_line($module, line)\n--\n\n"
     "degu._parse.parse_request_line(), compiled."},
    {"parse_response_line", FUNC(parse_response_line), FAST,
     "parse_response_line($module, line)\n--\n\n"
     "degu._parse.parse_response_line(), compiled."},
    {"parse_headers", FUNC(parse_headers), FAST,
     "parse_headers($module, src, isresponse=False, max_count=100)\n--\n\n"
     "degu._parse.parse_headers(), compiled."},
    {"parse_chunk", FUNC(parse_chunk), FAST,
     "parse_chunk($module, line)\n--\n\n"
     "degu._parse.parse_chunk(), compiled."},
    {"chunk_end", FUNC(chunk_end), FAST,
     "chunk_end($module, buf, pos, stop)\n--\n\n"
     "degu._parse.chunk_end(), compiled."},
    {"render_request", FUNC(render_request), FAST,
     "render_request($module, method, uri, headers)\n--\n\n"
     "degu._parse.render_request(), compiled."},
    {"render_response", FUNC(render_response), FAST,
     "render_response($module, status, reason, headers, extra='')\n--\n\n"
     "degu._parse.render_response(), compiled."},
    {"format_chunk", FUNC(format_chunk), FAST,
     "format_chunk($module, chunk)\n--\n\n"
     "degu._parse.format_chunk(), compiled."},
    {"response_head", FUNC(response_head), FAST,
     "response_head($module, response, method, connection, date)\n--\n\n"
     "The server's preamble (and small body) for a common response; None for the others."},
    {"scan_request", FUNC(scan_request), FAST,
     "scan_request($module, buf, start, stop, max_preamble, max_header_count)\n--\n\n"
     "The request preamble at buf[start:stop], parsed and framed: (end, kind, length, "
     "request), or None for the Python path (degu._io.read_request())."},
    {"scan_response", FUNC(scan_response), FAST,
     "scan_response($module, buf, start, stop, max_preamble, max_header_count, method)\n--\n\n"
     "The response preamble at buf[start:stop], parsed and framed: (end, kind, length, "
     "version, status, reason, headers), or None for the Python path "
     "(degu._io.read_response_head())."},
    {"_bind_request", FUNC(bind_request), METH_FASTCALL,
     "_bind_request($module, cls, origin)\n--\n\n"
     "The class scan_request() makes (degu.base.Request), its slots checked, and the "
     "origin a new request has."},
    {"_bind", bind, METH_O,
     "_bind(reference): the pure-Python functions (a dict by name) this module hands "
     "every case it does not handle to."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "degu._cparse",
    "The compiled core: C versions of the hot parsers and renderers of degu._parse.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

static PyObject *
new_str(const char *s)
{
    PyObject *str = PyUnicode_InternFromString(s);
    return str;
}

PyMODINIT_FUNC
PyInit__cparse(void)
{
    fill_tables();
    for (int k = 0; k < METHOD_COUNT; k++) {
        if (METHOD_STR[k] == NULL && (METHOD_STR[k] = new_str(METHOD_NAMES[k])) == NULL) {
            return NULL;
        }
    }
    for (int k = 0; k < COMMON_COUNT; k++) {
        COMMON_LEN[k] = (Py_ssize_t)strlen(COMMON_NAMES[k]);
        if (COMMON_STR[k] == NULL && (COMMON_STR[k] = new_str(COMMON_NAMES[k])) == NULL) {
            return NULL;
        }
    }
    if ((HTTP11 == NULL && (HTTP11 = new_str("HTTP/1.1")) == NULL)
            || (HTTP10 == NULL && (HTTP10 = new_str("HTTP/1.0")) == NULL)
            || (CHUNKED == NULL && (CHUNKED = new_str("chunked")) == NULL)) {
        return NULL;
    }
    if ((STATUS_CACHE == NULL && (STATUS_CACHE = PyDict_New()) == NULL)
            || (BLOCK_CACHE == NULL && (BLOCK_CACHE = PyDict_New()) == NULL)
            || (LINE_CACHE == NULL && (LINE_CACHE = PyDict_New()) == NULL)
            || (DEFAULT_MAX_COUNT == NULL
                && (DEFAULT_MAX_COUNT = PyLong_FromLong(MAX_HEADER_COUNT)) == NULL)) {
        return NULL;
    }
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(mod, "MAX_REQUEST_LINE_LEN", MAX_REQUEST_LINE_LEN) < 0
            || PyModule_AddIntConstant(mod, "MAX_HEADER_COUNT", MAX_HEADER_COUNT) < 0
            || PyModule_AddIntConstant(mod, "MAX_LINE_LEN", MAX_LINE_LEN) < 0
            || PyModule_AddIntConstant(mod, "MAX_CL_LEN", MAX_CL_LEN) < 0
            || PyModule_AddIntConstant(mod, "MAX_CHUNK_SIZE_LEN", MAX_CHUNK_SIZE_LEN) < 0
            || PyModule_AddIntConstant(mod, "MAX_IO_SIZE", MAX_IO_SIZE) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
