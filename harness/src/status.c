/*
 * Text for the project's status codes (enum oomb_status in plugin.h).
 */
#include "util.h"

const char *oomb_strerror(int status)
{
    return oomb_status_name(status); /* the one table, in the public header */
}
