"""The keys the tests' secret holds: fake, and long enough that a leak of any part of them would be noticed."""

TEST_API_KEY = "sk-test-4e1f0c2b9a7d4c55b0e3"
TEST_SAFETY_KEY = "safety-test-5d0c8e1a7b3f4e62a9c1d7f0b8e4a2c6"
