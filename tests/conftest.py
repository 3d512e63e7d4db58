"""Lab fixtures are plain pytest plugins, one module per lab part."""

pytest_plugins = ["tests.fixtures.cluster", "tests.fixtures.traffic", "tests.fixtures.git"]
