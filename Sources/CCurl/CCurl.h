/* Debian's libcurl headers (libcurl4-openssl-dev, pkg-config libcurl). */
#include <curl/curl.h>
