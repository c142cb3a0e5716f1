#include <stdlib.h>
#include <string.h>

#include "secret.h"

int secret_get(const struct secret_src *src, char **out,
	       struct mfs_error *err)
{
	*out = NULL;
	if (!src || src->kind == SECRET_NETRC || !src->get)
		return 0;
	return src->get(src->ctx, out, err);
}

void secret_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}
