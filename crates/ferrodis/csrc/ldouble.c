/* INCRBYFLOAT as Redis computes it: strtold, add in long double, "%.17Lf" with trailing zeros
 * removed. Returns the length written to out, -1 if a value is not a valid float, -2 if the
 * result is NaN or infinite. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <errno.h>

static int parse_ld(const char *s, size_t len, long double *out) {
    char buf[5120];
    char *eptr;
    if (len == 0 || len >= sizeof(buf)) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (isspace((unsigned char)buf[0])) return 0;
    errno = 0;
    long double v = strtold(buf, &eptr);
    if (isspace((unsigned char)buf[len - 1]) || (size_t)(eptr - buf) != len ||
        (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || fpclassify(v) == FP_ZERO)) || isnan(v))
        return 0;
    *out = v;
    return 1;
}

int ferrodis_incrbyfloat(const char *cur, size_t curlen, const char *incr, size_t incrlen, char *out, size_t outlen) {
    long double a = 0, b = 0;
    if (cur && !parse_ld(cur, curlen, &a)) return -1;
    if (!parse_ld(incr, incrlen, &b)) return -1;
    long double v = a + b;
    if (isnan(v) || isinf(v)) return -2;
    int n = snprintf(out, outlen, "%.17Lf", v);
    if (n <= 0 || (size_t)n >= outlen) return -2;
    if (strchr(out, '.')) {
        while (n > 0 && out[n - 1] == '0') n--;
        if (n > 0 && out[n - 1] == '.') n--;
    }
    if (n == 2 && out[0] == '-' && out[1] == '0') { out[0] = '0'; n = 1; }
    out[n] = '\0';
    return n;
}
