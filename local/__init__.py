"""AWS on this machine, for `make run`, `make invoke` and the tests: the template's HTTP API served as API Gateway
serves it (gateway.py, reading the template with template.py and cloudformation.py; cors.py, authorizers.py, and
lambda_runtime.py running the functions), the template's functions invoked asynchronously as Lambda invokes them,
each in a process of its own (lambda_service.py, execution_environment.py), and what the functions reach in AWS, in
moto (aws.py, secrets_manager.py, user_pool.py, quota_table.py, queues.py, scheduler.py, secrets_extension.py).
stand_ins.py starts them for `make run` (__main__.py)."""
