"""AWS on this machine, for `make run`, `make invoke` and the tests: the template's HTTP API served as API Gateway
serves it (gateway.py, reading the template with template.py and cloudformation.py; cors.py, authorizers.py, and
lambda_runtime.py running the functions), and what the function reaches in AWS, in moto (aws.py, secrets_manager.py,
user_pool.py, quota_table.py, secrets_extension.py). stand_ins.py starts them for `make run` (__main__.py)."""
