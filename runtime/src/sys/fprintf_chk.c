/* glibc's fortified fprintf for a musl build: Debian's libseccomp.a calls
 * it (it was compiled with _FORTIFY_SOURCE against glibc). The flag asks
 * for extra %n checks, which musl's vfprintf does not offer; the format
 * strings are libseccomp's own. Built by runtime/build.rs for musl only. */
#include <stdarg.h>
#include <stdio.h>

int __fprintf_chk(FILE *stream, int flag, const char *format, ...)
{
	va_list ap;
	int ret;

	(void)flag;
	va_start(ap, format);
	ret = vfprintf(stream, format, ap);
	va_end(ap);
	return ret;
}
