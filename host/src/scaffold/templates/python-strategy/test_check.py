import unittest

import check


class CheckTest(unittest.TestCase):
    def test_the_timeout_defaults_and_the_host_is_rendered_per_environment(self):
        self.assertEqual(check.parse_config('{"host": "db", "port": 5432}'), ("db", 5432, 5000))
        self.assertTrue(check.CONFIG_SCHEMA["properties"]["host"]["x-templatable"])

    def test_a_bad_port_is_named(self):
        for port in ("0", "65536", '"80"', "true"):
            with self.assertRaisesRegex(ValueError, "`port`"):
                check.parse_config(f'{{"host": "db", "port": {port}}}')

    def test_a_refused_connection_names_the_target(self):
        self.assertEqual(
            check.failure("CONNECTION_REFUSED", "connect to db:5432"),
            ("refused", "connect to db:5432: connection refused"),
        )
        self.assertEqual(check.failure("REMOTE_UNREACHABLE", "x")[0], "other")

    def test_exec_answers_connect_and_ping_only(self):
        self.assertEqual(check.answer("ping"), (0, "connected"))
        with self.assertRaisesRegex(ValueError, "`GET`"):
            check.answer("GET")


if __name__ == "__main__":
    unittest.main()
