"""The web console in a real browser: Debian's headless Chromium driven by Selenium (PyPI) through
Debian's chromedriver, against a `brook serve` with data. Each page is loaded and checked
against what Kafka clients see (confluent-kafka's admin and consumer); creating a topic, editing
a config, browsing and searching records and resetting a group's offsets are clicked through and
checked with the clients; a read-only console and a SASL login are checked too. Screenshots go to
BROOK_CONSOLE_SCREENSHOTS when set (docs/console/ holds the ones the docs show), else to the
test's temporary directory."""
from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource

from brook_interop import ck_admin, ck_create_topic, unique_topic
from conftest import Broker, sasl_broker, start_or_fail

from selenium import webdriver  # scripts/interop.sh installs it, and Debian's chromium and chromedriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

WAIT = 20


def chromium() -> "webdriver.Chrome":
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    for binary in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.path.exists(binary):
            options.binary_location = binary
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    assert os.path.exists(driver_path), "chromedriver is missing (scripts/interop.sh installs Debian's chromium-driver)"
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("BROOK_CONSOLE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return lambda driver, name: driver.save_screenshot(str(folder / f"{name}.png"))


def css(driver, selector: str, count: "int | None" = None):
    """The elements `selector` finds once there are any (or exactly `count`)."""
    def found(d):
        elements = d.find_elements(By.CSS_SELECTOR, selector)
        ok = len(elements) == count if count is not None else len(elements) > 0
        return elements if ok else False
    return WebDriverWait(driver, WAIT).until(found, f"waiting for {selector}" + (f" x{count}" if count is not None else ""))


def one(driver, selector: str):
    return css(driver, selector)[0]


def choose(driver, selector: str, value: str) -> None:
    """Selects `value` in the select `selector` once the page has put that option in it."""
    one(driver, f"{selector} option[value='{value}']")
    Select(one(driver, selector)).select_by_value(value)


def click(driver, element) -> None:
    """Clicks `element` once scrolled to the middle of the window (clear of the sticky header)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def text_of(driver, selector: str, want: str):
    WebDriverWait(driver, WAIT).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, selector), want),
                                      f"waiting for {want!r} in {selector}")


def api(base: str, path: str):
    with urllib.request.urlopen(base + path, timeout=10) as response:
        return json.loads(response.read())


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return [tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)]
    finally:
        c.close()


@pytest.fixture(scope="module")
def shop(broker):
    """A topic with JSON records, headers and keys, and a group that read part of it."""
    topic = unique_topic("console-orders")
    ck_create_topic(broker.bootstrap, topic, partitions=2)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(40):
        value = json.dumps({"order": i, "item": "book" if i % 3 else "lamp", "price": 10 + i}).encode()
        producer.produce(topic, key=f"customer-{i % 5}".encode(), value=value, partition=i % 2,
                         headers=[("source", b"web" if i % 2 else b"shop")])
    producer.produce(topic, key=None, value=b"\x00\x01\xfe binary", partition=0)
    assert producer.flush(30) == 0
    group = unique_topic("console-group")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(topic, 0, 15), TopicPartition(topic, 1, 20)], asynchronous=False)
    c.close()
    return {"topic": topic, "group": group}


def test_overview_topics_and_topic_page(broker, browser, shop, shots):
    base = broker.http
    browser.get(base + "/")
    session = api(base, "/api/session")
    text_of(browser, "[data-test=cluster-id]", session["clusterId"])
    assert len(css(browser, "tr[data-test=broker-row]")) == 1
    shots(browser, "overview")

    click(browser, one(browser, "a[data-test=nav-topics]"))
    row = one(browser, f"tr[data-test=topic-row][data-name='{shop['topic']}']")
    assert "41" in row.text  # records
    shots(browser, "topics")

    click(browser, row.find_element(By.CSS_SELECTOR, "a"))
    text_of(browser, "[data-test=topic-name]", shop["topic"])
    rows = css(browser, "tr[data-test=partition-row]", count=2)
    assert "21" in rows[0].text and "20" in rows[1].text  # end offsets
    assert one(browser, f"tr[data-test=config-row][data-name='retention.ms']")
    # Live: records produced now show up without a reload (the page polls every 3 s).
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for _ in range(5):
        producer.produce(shop["topic"], value=b"{}", partition=1)
    assert producer.flush(30) == 0
    WebDriverWait(browser, WAIT).until(lambda d: "25" in d.find_elements(By.CSS_SELECTOR, "tr[data-test=partition-row]")[1].text,
                                       "the partition's end offset updated in place")
    assert one(browser, "svg[data-test=throughput-graph]")
    shots(browser, "topic")


def test_the_controller_quorum_page(broker, browser, shots):
    """The quorum page (DescribeQuorum through the admin client): the one voter leads with no
    lag, and the high watermark moves without a reload when a topic is made."""
    browser.get(broker.http + "/")
    click(browser, one(browser, "a[data-test=nav-quorum]"))
    text_of(browser, "[data-test=quorum-leader]", "node 1")
    text_of(browser, "[data-test=quorum-caught-up]", "1 of 1")
    (row,) = css(browser, "tr[data-test=voter-row]", count=1)
    assert "leader" in row.text and row.get_attribute("data-id") == "1", row.text
    assert "No observers" in one(browser, "main").text
    hw = int(one(browser, "[data-test=quorum-hw]").text.replace(",", ""))
    ck_create_topic(broker.bootstrap, unique_topic("console-quorum"), partitions=1)
    WebDriverWait(browser, WAIT).until(lambda d: int(d.find_element(By.CSS_SELECTOR, "[data-test=quorum-hw]").text.replace(",", "")) > hw,
                                       "the high watermark moved in place")
    assert api(broker.http, "/api/quorum")["voters"][0]["lag"] == 0
    shots(browser, "quorum")


def test_create_topic_and_edit_a_config(broker, browser, shots):
    base = broker.http
    name = unique_topic("console-made")
    browser.get(base + "/#/topics")
    click(browser, one(browser, "[data-test=create-topic-open]"))
    one(browser, "[data-test=create-topic-name]").send_keys(name)
    partitions = one(browser, "[data-test=create-topic-partitions]")
    partitions.clear()
    partitions.send_keys("3")
    one(browser, "[data-test=create-topic-configs]").send_keys("retention.ms=3600000\ncleanup.policy=compact")
    shots(browser, "create-topic")
    click(browser, one(browser, "[data-test=create-topic-submit]"))
    text_of(browser, "[data-test=topic-name]", name)
    css(browser, "tr[data-test=partition-row]", count=3)

    admin = ck_admin(broker.bootstrap)
    meta = admin.list_topics(name, timeout=10)
    assert len(meta.topics[name].partitions) == 3
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    configs = admin.describe_configs([resource])[resource].result(15)
    assert configs["retention.ms"].value == "3600000" and configs["cleanup.policy"].value == "compact"

    # Edit retention.ms in the page; the broker has the new value.
    row = one(browser, "tr[data-test=config-row][data-name='retention.ms']")
    edit = [b for b in row.find_elements(By.CSS_SELECTOR, "button, a") if "edit" in b.text.lower()]
    assert edit, f"no edit action in {row.text!r}"
    click(browser, edit[0])
    field = one(browser, "input[data-test=config-edit][data-name='retention.ms']")
    field.clear()
    field.send_keys("7200000")
    click(browser, one(browser, "[data-test=config-save]"))
    WebDriverWait(browser, WAIT).until(
        lambda d: admin.describe_configs([resource])[resource].result(15)["retention.ms"].value == "7200000",
        "retention.ms changed on the broker")

    # Delete it from its page.
    click(browser, one(browser, "[data-test=topic-delete]"))
    click(browser, one(browser, "[data-test=topic-delete-confirm]"))
    WebDriverWait(browser, WAIT).until(lambda d: name not in admin.list_topics(timeout=10).topics, "the topic deleted")
    # The page goes back to the topic list once the DELETE is answered, which may come after
    # the metadata shows the topic gone: wait for it, or it would leave the next test's page.
    WebDriverWait(browser, WAIT).until(lambda d: d.current_url.endswith("#/topics"), "back on the topic list")


def test_record_browser(broker, browser, shop, shots):
    browser.get(broker.http + f"/#/topics/{shop['topic']}/records")
    limit = one(browser, "input[data-test=records-limit]")
    limit.clear()
    limit.send_keys("100")
    click(browser, one(browser, "[data-test=records-load]"))
    rows = css(browser, "tr[data-test=record-row]")
    WebDriverWait(browser, WAIT).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr[data-test=record-row]")) >= 41)
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-test=record-row]")
    assert any(r.find_elements(By.CSS_SELECTOR, "pre.json") for r in rows), "a JSON value pretty-printed"
    assert any("\"item\": \"lamp\"" in r.text for r in rows)
    assert any("binary" in r.text for r in rows)
    # The search keeps the rows whose key, value or header holds the text.
    one(browser, "input[data-test=records-search]").send_keys("lamp")
    WebDriverWait(browser, WAIT).until(
        lambda d: 0 < len([r for r in d.find_elements(By.CSS_SELECTOR, "tr[data-test=record-row]") if r.is_displayed()]) < 20)
    shown = [r for r in browser.find_elements(By.CSS_SELECTOR, "tr[data-test=record-row]") if r.is_displayed()]
    assert all("lamp" in r.text for r in shown)
    shots(browser, "records")
    # One partition from an offset.
    one(browser, "input[data-test=records-search]").clear()
    choose(browser, "select[data-test=records-partition]", "1")
    choose(browser, "select[data-test=records-mode]", "offset")
    value = one(browser, "input[data-test=records-value]")
    value.clear()
    value.send_keys("18")
    limit = one(browser, "input[data-test=records-limit]")
    limit.clear()
    limit.send_keys("3")
    click(browser, one(browser, "[data-test=records-load]"))
    WebDriverWait(browser, WAIT).until(
        lambda d: [r.find_element(By.CSS_SELECTOR, ".offset").text for r in d.find_elements(By.CSS_SELECTOR, "tr[data-test=record-row]")]
        == ["18", "19", "20"], "offsets 18-20 of partition 1")


def test_groups_lag_and_offsets_reset(broker, browser, shop, shots):
    browser.get(broker.http + "/#/groups")
    row = one(browser, f"tr[data-test=group-row][data-name='{shop['group']}']")
    click(browser, row.find_element(By.CSS_SELECTOR, "a"))
    text_of(browser, "[data-test=group-id]", shop["group"])
    lag0 = one(browser, f"tr[data-test=offset-row][data-topic='{shop['topic']}'][data-partition='0'] .lag")
    assert lag0.text.replace(",", "") == "6"  # 21 - 15
    assert one(browser, "svg[data-test=lag-graph]")
    shots(browser, "group")
    choose(browser, "select[data-test=reset-topic]", shop["topic"])
    choose(browser, "select[data-test=reset-to]", "earliest")
    click(browser, one(browser, "[data-test=reset-submit]"))
    WebDriverWait(browser, WAIT).until(lambda d: committed(broker.bootstrap, shop["group"], shop["topic"], 2) == [0, 0],
                                       "the group's offsets at the start")
    text_of(browser, f"tr[data-test=offset-row][data-topic='{shop['topic']}'][data-partition='0'] .lag", "21")


def test_a_read_only_console(tmp_path, browser):
    b = Broker(tmp_path / "data", tmp_path / "brook.log", {"console.read.only": "true"})
    start_or_fail(b)
    try:
        browser.get(b.http + "/#/topics")
        text_of(browser, "[data-test=read-only]", "console.read.only")
        css(browser, "a[data-test=nav-topics]")
        assert not [e for e in browser.find_elements(By.CSS_SELECTOR, "[data-test=create-topic-open]") if e.is_displayed() and e.is_enabled()]
        request = urllib.request.Request(b.http + "/api/topics", data=b'{"name":"x"}', method="POST",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
    finally:
        b.stop()


JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')


def test_login_as_a_broker_user(tmp_path, browser, shots):
    b = sasl_broker(tmp_path, {"listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
                               "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN",
                               "inter.broker.listener.name": "SASL_PLAINTEXT"})
    start_or_fail(b)
    try:
        browser.delete_all_cookies()
        browser.get(b.http + "/")
        one(browser, "input[data-test=login-user]").send_keys("alice")
        one(browser, "input[data-test=login-password]").send_keys("wrong")
        click(browser, one(browser, "[data-test=login-submit]"))
        text_of(browser, "[data-test=flash]", "login failed")
        password = one(browser, "input[data-test=login-password]")
        password.clear()
        password.send_keys("alice-secret")
        shots(browser, "login")
        click(browser, one(browser, "[data-test=login-submit]"))
        text_of(browser, "[data-test=cluster-id]", api(b.http, "/api/session")["clusterId"])
        with pytest.raises(urllib.error.HTTPError) as refused:  # no cookie: no data
            api(b.http, "/api/topics")
        assert refused.value.code == 401
    finally:
        b.stop()


def test_login_with_a_bearer_token(tmp_path, browser, shots):
    """On an OAUTHBEARER listener the console asks for a bearer token, which the broker checks
    (ES256, its key set from a file): another key's token is refused, the right one signs in
    as the token's subject, and the session ends when the token expires."""
    import json as _json
    from test_oauthbearer import Keys
    keys = Keys()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(_json.dumps(keys.jwks()))
    b = sasl_broker(tmp_path, {"listener.name.sasl_plaintext.sasl.enabled.mechanisms": "OAUTHBEARER",
                               "sasl.oauthbearer.jwks.endpoint.url": f"file://{jwks}",
                               "inter.broker.listener.name": "SASL_PLAINTEXT"})
    start_or_fail(b)
    try:
        assert api(b.http, "/api/session")["loginWith"] == "token"
        browser.delete_all_cookies()
        browser.get(b.http + "/")
        field = one(browser, "textarea[data-test=login-token]")
        field.send_keys(Keys().token("ES256", sub="mallory")[0])
        click(browser, one(browser, "[data-test=login-submit]"))
        text_of(browser, "[data-test=flash]", "login failed")
        field = one(browser, "textarea[data-test=login-token]")
        field.clear()
        issued = time.time()
        field.send_keys(keys.token("ES256", sub="carol", lifetime=15)[0])
        shots(browser, "login-token")
        click(browser, one(browser, "[data-test=login-submit]"))
        text_of(browser, "[data-test=cluster-id]", api(b.http, "/api/session")["clusterId"])
        text_of(browser, "#who", "carol")
        cookie = browser.get_cookie("brook_session")["value"]
        request = urllib.request.Request(b.http + "/api/topics", headers={"Cookie": f"brook_session={cookie}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
        # The token lives 15 s: the session is gone after it (the console allows no clock skew).
        time.sleep(max(0.0, issued + 16 - time.time()))
        with pytest.raises(urllib.error.HTTPError) as ended:
            urllib.request.urlopen(request, timeout=10)
        assert ended.value.code == 401
    finally:
        b.stop()


def test_acls_and_quotas_pages(tmp_path, browser, shots):
    """The ACL and quota pages, logged in as a super user of a broker with an authorizer: an
    entry added on the page is what librdkafka's admin client describes, and removed from the
    page it is gone there; a quota set on the page is what kafka-python's DescribeClientQuotas
    reads, and removed from the page it is gone. A broker without an authorizer says it has
    none."""
    from confluent_kafka.admin import AclBindingFilter, AclOperation, AclPermissionType, AdminClient, ResourcePatternType, ResourceType
    from kafka import KafkaAdminClient
    from test_quotas import describe
    b = sasl_broker(tmp_path, {"listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
                               "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN",
                               "inter.broker.listener.name": "SASL_PLAINTEXT",
                               "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                               "super.users": "User:admin"})
    start_or_fail(b)
    sasl = {"bootstrap.servers": f"127.0.0.1:{b.sasl_port}", "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
            "sasl.username": "admin", "sasl.password": "admin-secret"}
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY)
    topic = unique_topic("console-acl")
    try:
        admin = AdminClient(sasl)
        browser.delete_all_cookies()
        browser.get(b.http + "/")
        one(browser, "input[data-test=login-user]").send_keys("admin")
        one(browser, "input[data-test=login-password]").send_keys("admin-secret")
        click(browser, one(browser, "[data-test=login-submit]"))
        text_of(browser, "[data-test=cluster-id]", api(b.http, "/api/session")["clusterId"])
        click(browser, one(browser, "[data-test=nav-acls]"))
        text_of(browser, "tr.empty", "No ACLs.")
        click(browser, one(browser, "[data-test=acl-open]"))
        one(browser, "input[data-test=acl-principal]").send_keys("User:alice")
        one(browser, "input[data-test=acl-resource-name]").send_keys(topic)
        choose(browser, "select[data-test=acl-operation]", "WRITE")
        choose(browser, "select[data-test=acl-pattern]", "PREFIXED")
        click(browser, one(browser, "[data-test=acl-submit]"))
        row = one(browser, f"tr[data-test=acl-row][data-key='ALLOW User:alice WRITE TOPIC PREFIXED {topic}']")
        shots(browser, "acls")
        [found] = admin.describe_acls(everything).result(timeout=30)
        assert (found.restype, found.name, found.resource_pattern_type, found.principal, found.host, found.operation, found.permission_type) == \
            (ResourceType.TOPIC, topic, ResourcePatternType.PREFIXED, "User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
        click(browser, row.find_element(By.CSS_SELECTOR, "[data-test=acl-delete]"))
        click(browser, row.find_element(By.CSS_SELECTOR, "[data-test=acl-delete-confirm]"))
        text_of(browser, "tr.empty", "No ACLs.")
        assert admin.describe_acls(everything).result(timeout=30) == []

        click(browser, one(browser, "[data-test=nav-quotas]"))
        text_of(browser, "tr.empty", "No client quotas.")
        click(browser, one(browser, "[data-test=quota-open]"))
        one(browser, "input[data-test=quota-entity-name]").send_keys("alice")
        choose(browser, "select[data-test=quota-key]", "consumer_byte_rate")
        one(browser, "input[data-test=quota-value]").send_keys("2048")
        click(browser, one(browser, "[data-test=quota-submit]"))
        row = one(browser, "tr[data-test=quota-row][data-key='user=alice consumer_byte_rate']")
        text_of(browser, "tr[data-test=quota-row] td.quota-value", "2,048")
        shots(browser, "quotas")
        kp = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{b.sasl_port}", security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                              sasl_plain_username="admin", sasl_plain_password="admin-secret", request_timeout_ms=30_000)
        try:
            assert describe(kp, [("user", 2, None)]) == {(("user", "alice"),): {"consumer_byte_rate": 2048.0}}
            click(browser, row.find_element(By.CSS_SELECTOR, "[data-test=quota-delete]"))
            click(browser, row.find_element(By.CSS_SELECTOR, "[data-test=quota-delete-confirm]"))
            text_of(browser, "tr.empty", "No client quotas.")
            assert describe(kp, [("user", 2, None)]) == {}
        finally:
            kp.close()
    finally:
        b.stop()
    # Without an authorizer the page says so.
    plain = Broker(tmp_path / "plain-data", tmp_path / "plain.log")
    start_or_fail(plain)
    try:
        browser.delete_all_cookies()
        browser.get(plain.http + "/#/acls")
        text_of(browser, "[data-test=acl-note]", "no authorizer")
        assert api(plain.http, "/api/acls") == {"authorizer": False, "acls": []}
    finally:
        plain.stop()
