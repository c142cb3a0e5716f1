/* overwrite.h - a message file opened for writing.
 *
 * A message's bytes never change, but a backup restored over the tree
 * (cp, or cat > name) writes each message's own bytes back over it.  That
 * must succeed and change nothing; only different bytes are refused.  So
 * writes are compared with the message as they come: a write of other
 * bytes fails with EPERM at once, and the close fails with EPERM when the
 * file would end up other than the message (cut short by O_TRUNC and not
 * written back whole, or longer).  Nothing is ever sent to the server.
 *
 * Not thread safe per handle; FUSE serialises the calls of one open file
 * as far as this needs (a writer racing itself only gets EPERM). */
#ifndef OVERWRITE_H
#define OVERWRITE_H

#include <stdint.h>
#include <sys/types.h>

struct overwrite;

/* Take body_fd (the message's bytes, size long; owned from now on).
 * 0 or -ENOMEM (body_fd is then closed). */
int overwrite_open(int body_fd, uint64_t size, struct overwrite **out);

/* The message's bytes, for reads through the same open file. */
int overwrite_fd(const struct overwrite *w);

/* A write of n bytes at off: 0 when they are the message's own bytes
 * there, else -EPERM (and the close will fail too); -EIO when the message
 * cannot be read. */
int overwrite_write(struct overwrite *w, const char *buf, size_t n, off_t off);

/* ftruncate (O_TRUNC) to size: 0, or -EPERM for a size beyond the
 * message's (that would add bytes). */
int overwrite_truncate(struct overwrite *w, uint64_t size);

/* At close: 0 when the file as written is the message, byte for byte,
 * else -EPERM. */
int overwrite_check(const struct overwrite *w);

/* Close the body and free.  NULL is a no-op. */
void overwrite_close(struct overwrite *w);

#endif
