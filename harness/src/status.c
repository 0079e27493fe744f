/*
 * Text for the project's status codes (enum oomb_status in plugin.h).
 */
#include "util.h"

const char *oomb_strerror(int status)
{
    switch (status) {
    case OOMB_OK: return "ok";
    case OOMB_ERR_OOM: return "out of memory";
    case OOMB_ERR_INVALID: return "invalid argument";
    case OOMB_ERR_UNSUPPORTED: return "unsupported";
    case OOMB_ERR_BACKEND: return "backend error";
    case OOMB_ERR_IO: return "I/O error";
    case OOMB_ERR_NOT_USABLE: return "not usable here";
    case OOMB_ERR_NUMERIC: return "non-finite value";
    case OOMB_ERR_INTERNAL: return "internal error";
    case OOMB_ERR_PARSE: return "parse error";
    case OOMB_ERR_ABI: return "plugin ABI error";
    case OOMB_ERR_NOT_APPLICABLE: return "not applicable";
    default: return "unknown status";
    }
}
