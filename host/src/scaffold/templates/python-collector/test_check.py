import unittest

import check


class CheckTest(unittest.TestCase):
    def test_an_unexpected_status_is_down_not_an_error(self):
        self.assertEqual(check.summarize(503, 200), {"statusCode": 503, "up": False})

    def test_the_expected_status_defaults_to_200(self):
        self.assertEqual(check.parse_config('{"url": "/health"}')["expectStatus"], 200)

    def test_a_config_without_url_is_refused(self):
        with self.assertRaises(ValueError):
            check.parse_config("{}")


if __name__ == "__main__":
    unittest.main()
