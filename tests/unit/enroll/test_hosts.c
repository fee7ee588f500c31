/*
 * The fleet's hosts file (enroll/hosts.c): what is accepted, what each
 * row becomes, and that every bad file is refused whole with its line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "enroll/hosts.h"

struct fx {
	char dir[64];
	char pw[128];		/* 0600 */
	char hosts[128];
};

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/amtca-hosts-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->pw, sizeof(f->pw), "%s/pw", f->dir);
	snprintf(f->hosts, sizeof(f->hosts), "%s/hosts.csv", f->dir);
	write_file(f->pw, "secret\n", 0600);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	amtca_rmtree(f->dir);
	free(f);
	return 0;
}

/* Parse text (syntax only); returns the code, *msg the detail. */
static int
parse(const char *text, const struct hosts_defaults *d, struct fleet_host **h,
    size_t *n)
{
	return hosts_parse(text, strlen(text), d, h, n);
}

static void
expect_err(const char *text, const struct hosts_defaults *d, const char *needle)
{
	struct fleet_host *h = (struct fleet_host *)1;
	size_t n = 99;
	int r = parse(text, d, &h, &n);

	assert_int_not_equal(r, 0);
	assert_null(h);
	assert_int_equal(n, 0);
	if (strstr(amtca_errmsg(r), needle) == NULL)
		fail_msg("detail \"%s\" lacks \"%s\"", amtca_errmsg(r), needle);
}

static const struct hosts_defaults nodef = { NULL, NULL, NULL, 0 };

static void
test_defaults_and_columns(void **state)
{
	struct hosts_defaults d = { "admin", "/etc/amt/pw", NULL, 0 };
	struct fleet_host *h = NULL;
	size_t n = 0;

	(void)state;
	/* Columns in any order, CRLF, a comment, an empty line, a BOM. */
	assert_int_equal(parse("\xef\xbb\xbf# fleet A\r\n"
	    "password_file,USER,address,fqdn\r\n"
	    "\r\n"
	    ",,,Dev1.Example.Test.\r\n"
	    "pw2,ops,10.0.0.2,dev2.example.test\r\n", &d, &h, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(h[0].fqdn, "dev1.example.test");
	assert_null(h[0].address);
	assert_string_equal(h[0].user, "admin");
	assert_string_equal(h[0].password_file, "/etc/amt/pw");
	assert_int_equal(h[0].password_file_named, 0);	/* the default */
	assert_int_equal(h[0].port, 0);
	assert_int_equal(h[0].tls_port, 0);
	assert_int_equal(h[0].has_pin, 0);
	assert_int_equal(h[0].line, 4);
	assert_string_equal(h[1].address, "10.0.0.2");
	assert_string_equal(h[1].user, "ops");
	/* A relative password file is made absolute (cwd for hosts_parse). */
	assert_true(h[1].password_file[0] == '/');
	assert_non_null(strstr(h[1].password_file, "/pw2"));
	assert_int_equal(h[1].password_file_named, 1);	/* the row's */
	assert_int_equal(h[1].line, 5);
	hosts_free(h, n);

	/* Optional columns. */
	assert_int_equal(parse("fqdn,address,user,password_file,port,tls_port,"
	    "tls_pin_sha256\n"
	    "a.example.test,::1,u,/p,1234,4321,"
	    "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n"
	    "b.example.test,,u,/p,,,\n", &nodef, &h, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(h[0].port, 1234);
	assert_int_equal(h[0].tls_port, 4321);
	assert_int_equal(h[0].has_pin, 1);
	assert_int_equal(h[0].tls_pin[0], 0x00);
	assert_int_equal(h[0].tls_pin[1], 0x11);
	assert_int_equal(h[0].tls_pin[31], 0xff);
	assert_int_equal(h[1].port, 0);
	assert_int_equal(h[1].has_pin, 0);
	hosts_free(h, n);
}

static void
test_quoting(void **state)
{
	struct fleet_host *h = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(parse("\"fqdn\",\"address\",\"user\",\"password_file\"\n"
	    "\"a.example.test\" , \"10.1.2.3\",\"ad,min\",\"/dir/with \"\"q\"\", "
	    "comma\"\n"
	    "  b.example.test  ,,u,/p\n", &nodef, &h, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(h[0].fqdn, "a.example.test");
	assert_string_equal(h[0].address, "10.1.2.3");
	assert_string_equal(h[0].user, "ad,min");
	assert_string_equal(h[0].password_file, "/dir/with \"q\", comma");
	assert_string_equal(h[1].fqdn, "b.example.test");
	hosts_free(h, n);

	expect_err("fqdn,address,user,password_file\n"
	    "\"a.example.test,,u,/p", &nodef, "line 2: a quoted field is not closed");
	expect_err("fqdn,address,user,password_file\n"
	    "a.exa\"mple.test,,u,/p\n", &nodef, "line 2: a quote inside");
	expect_err("fqdn,address,user,password_file\n"
	    "\"a.example.test\"x,,u,/p\n", &nodef, "line 2: text after");
	expect_err("fqdn,address,user,password_file\n"
	    "\"a.example\n.test\",,u,/p\n", &nodef, "line 2: a line break inside");
	expect_err("fqdn,address,user,password_file\r"
	    "a.example.test,,u,/p\n", &nodef, "line 1: a carriage return");
}

static void
test_missing_column(void **state)
{
	(void)state;
	expect_err("fqdn,address,password_file\na.example.test,,/p\n", &nodef,
	    "line 1: the header has no \"user\" column");
	expect_err("# c\nfqdn,user,password_file,address,colour\n", &nodef,
	    "line 2: unknown column \"colour\"");
	expect_err("fqdn,address,user,password_file,fqdn\n", &nodef,
	    "column \"fqdn\" appears twice");
	expect_err("fqdn,address,user,password_file\na.example.test,,u\n",
	    &nodef, "line 2: 3 fields, the header has 4");
	expect_err("", &nodef, "hosts file is empty");
	expect_err("fqdn,address,user,password_file\n", &nodef, "no devices");
	/* Nothing but syntax is wrong in the first rows: still no hosts. */
	expect_err("fqdn,address,user,password_file\na.example.test,,u,/p\n"
	    "b.example.test,,,/p\n", &nodef, "line 3: no user");
	expect_err("fqdn,address,user,password_file\na.example.test,,u,\n",
	    &nodef, "line 2: no password file");
}

static void
test_duplicate(void **state)
{
	(void)state;
	expect_err("fqdn,address,user,password_file\n"
	    "a.example.test,,u,/p\nb.example.test,,u,/p\n"
	    "A.Example.TEST.,,u,/p\n", &nodef,
	    "line 4: device a.example.test is already on line 2");
}

static void
test_bad_port_pin_fqdn_address(void **state)
{
	struct ca_policy pol;
	const char *doms[] = { "example.test" };
	struct hosts_defaults d = { NULL, NULL, &pol, 0 };

	(void)state;
	expect_err("fqdn,address,user,password_file,port\n"
	    "a.example.test,,u,/p,0\n", &nodef, "line 2: port \"0\" is not a port");
	expect_err("fqdn,address,user,password_file,tls_port\n"
	    "a.example.test,,u,/p,65536\n", &nodef, "line 2: tls_port");
	expect_err("fqdn,address,user,password_file,port\n"
	    "a.example.test,,u,/p,16992x\n", &nodef, "is not a port");
	expect_err("fqdn,address,user,password_file,tls_pin_sha256\n"
	    "a.example.test,,u,/p,0011\n", &nodef, "line 2: tls_pin_sha256");
	expect_err("fqdn,address,user,password_file,tls_pin_sha256\n"
	    "a.example.test,,u,/p,"
	    "g0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
	    &nodef, "tls_pin_sha256 is not a SHA-256");
	expect_err("fqdn,address,user,password_file\n"
	    "a.example.test,10.0.0.256,u,/p\n", &nodef,
	    "line 2: address \"10.0.0.256\" is not an IP address");
	expect_err("fqdn,address,user,password_file\nlocalhost,,u,/p\n", &nodef,
	    "line 2: fqdn");
	expect_err("fqdn,address,user,password_file\n*.example.test,,u,/p\n",
	    &nodef, "wildcard");
	expect_err("fqdn,address,user,password_file\na.example.test,,\"a\"\"b\",/p\n",
	    &nodef, "line 2: user");
	ca_policy_init(&pol);
	pol.domains = doms;
	pol.ndomains = 1;
	expect_err("fqdn,address,user,password_file\n"
	    "a.example.test,,u,/p\nb.elsewhere.test,,u,/p\n", &d, "line 3: fqdn");
}

static void
test_password_files(void **state)
{
	struct fx *f = *state;
	struct hosts_defaults d = { "admin", NULL, NULL, 0 };
	struct fleet_host *h = NULL;
	char text[512], other[160];
	size_t n = 0;
	int r;

	/* Relative to the hosts file's directory, and checked. */
	snprintf(text, sizeof(text), "fqdn,address,user,password_file\n"
	    "a.example.test,,,pw\n");
	write_file(f->hosts, text, 0644);
	assert_int_equal(hosts_load(f->hosts, &d, &h, &n), 0);
	assert_int_equal(n, 1);
	assert_non_null(strstr(h[0].password_file, f->dir));
	assert_non_null(strstr(h[0].password_file, "/pw"));
	hosts_free(h, n);

	/* Missing. */
	snprintf(text, sizeof(text), "fqdn,address,user,password_file\n"
	    "a.example.test,,,pw\nb.example.test,,,nope\n");
	write_file(f->hosts, text, 0644);
	h = (struct fleet_host *)1;
	r = hosts_load(f->hosts, &d, &h, &n);
	assert_int_not_equal(r, 0);
	assert_null(h);
	assert_non_null(strstr(amtca_errmsg(r), "line 3: "));
	assert_non_null(strstr(amtca_errmsg(r), "nope"));

	/* Readable by others. */
	snprintf(other, sizeof(other), "%s/pw-open", f->dir);
	write_file(other, "secret\n", 0644);
	snprintf(text, sizeof(text), "fqdn,address,user,password_file\n"
	    "a.example.test,,,%s\n", other);
	write_file(f->hosts, text, 0644);
	r = hosts_load(f->hosts, &d, &h, &n);
	assert_int_not_equal(r, 0);
	assert_non_null(strstr(amtca_errmsg(r), "line 2: password file"));
	assert_non_null(strstr(amtca_errmsg(r), "accessible to others"));

	/* Writable by the group: StrictModes, as a PIN file. */
	assert_int_equal(chmod(other, 0620), 0);
	r = hosts_load(f->hosts, &d, &h, &n);
	assert_int_not_equal(r, 0);
	assert_non_null(strstr(amtca_errmsg(r), "writable by group or others"));

	/* Unreadable by us (meaningless as root, who reads anything). */
	if (geteuid() != 0) {
		assert_int_equal(chmod(other, 0200), 0);
		r = hosts_load(f->hosts, &d, &h, &n);
		assert_int_not_equal(r, 0);
		assert_non_null(strstr(amtca_errmsg(r), "cannot read password file"));
	}

	/* A directory is not a password file. */
	snprintf(text, sizeof(text), "fqdn,address,user,password_file\n"
	    "a.example.test,,,%s\n", f->dir);
	write_file(f->hosts, text, 0644);
	assert_int_equal(chmod(f->dir, 0700), 0);
	r = hosts_load(f->hosts, &d, &h, &n);
	assert_int_not_equal(r, 0);
	assert_non_null(strstr(amtca_errmsg(r), "not a regular file"));

	/* hosts_parse alone does not touch the files. */
	assert_int_equal(parse("fqdn,address,user,password_file\n"
	    "a.example.test,,u,/nonexistent/pw\n", &nodef, &h, &n), 0);
	hosts_free(h, n);
}

static void
test_limits(void **state)
{
	char *big;
	size_t i, len = 5000;

	(void)state;
	big = malloc(len + 64);
	assert_non_null(big);
	strcpy(big, "fqdn,address,user,password_file\na.example.test,,u,/");
	for (i = strlen(big); i < len; i++)
		big[i] = 'p';
	big[i] = '\0';
	expect_err(big, &nodef, "line 2: longer than 4096 bytes");
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_columns),
		cmocka_unit_test(test_quoting),
		cmocka_unit_test(test_missing_column),
		cmocka_unit_test(test_duplicate),
		cmocka_unit_test(test_bad_port_pin_fqdn_address),
		cmocka_unit_test_setup_teardown(test_password_files, setup, teardown),
		cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
