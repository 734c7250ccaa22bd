"""Production mode: `check --deploy` is clean, and missing secrets stop the process."""

from tests.support.manage import manage, production


def test_check_deploy_is_clean_in_production_mode():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **production())
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_its_secrets():
    result = manage("check", BDR_ENV="production", ALLOWED_HOSTS="portal.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when BDR_ENV=production" in result.stderr
