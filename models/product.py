"""Products (SKUs), price lists by distributor level/region, and promotions."""

from __future__ import annotations

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from models.base import ProductStatus, PromotionKind, TimestampMixin, enum_field, money_field

# Decimal columns are VARCHAR on SQLite, so numeric CHECKs cast (a no-op on PostgreSQL).
VALID_DATES = "valid_to IS NULL OR valid_to >= valid_from"


class Product(TimestampMixin, Model):
    id = fields.IntField(primary_key=True)
    sku = fields.CharField(max_length=64, unique=True, description="SKU code")
    name = fields.CharField(max_length=200)
    pinyin = fields.CharField(
        max_length=512, description="full pinyin of the name, lower case, no spaces (fuzzy match)"
    )
    initials = fields.CharField(max_length=128, description="pinyin first letters (fuzzy match)")
    category = fields.CharField(max_length=64)
    unit = fields.CharField(max_length=16, description="sales unit, e.g. 箱, 件")
    status = enum_field(ProductStatus, "active | inactive", default=ProductStatus.ACTIVE)
    spec = fields.CharField(max_length=200, null=True, description="specification, e.g. 500ml*12")

    class Meta:
        table = "product"
        indexes = (("category",),)

    def __str__(self) -> str:
        return f"Product({self.sku})"


class PriceList(TimestampMixin, Model):
    """Prices for a distributor level and/or region — NULL level/region = any."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100)
    level = fields.IntField(null=True, description="distributor level it applies to — NULL = all")
    region = fields.CharField(max_length=64, null=True, description="region — NULL = all")
    valid_from = fields.DateField()
    valid_to = fields.DateField(null=True, description="last valid day — NULL = open-ended")
    priority = fields.IntField(db_default=0, description="higher wins when several lists apply")

    items: fields.ReverseRelation[PriceListItem]

    class Meta:
        table = "price_list"
        indexes = (("level", "region"),)
        constraints = (CheckConstraint(check=VALID_DATES, name="ck_price_list_dates"),)


class PriceListItem(Model):
    id = fields.IntField(primary_key=True)
    price_list: fields.ForeignKeyRelation[PriceList] = fields.ForeignKeyField(
        "qudao.PriceList", related_name="items", on_delete=fields.CASCADE
    )
    product: fields.ForeignKeyRelation[Product] = fields.ForeignKeyField(
        "qudao.Product", related_name="price_items", on_delete=fields.RESTRICT
    )
    price = money_field(description="unit price before promotions")

    class Meta:
        table = "price_list_item"
        unique_together = (("price_list", "product"),)
        indexes = (("product_id",),)
        constraints = (CheckConstraint(check="CAST(price AS NUMERIC) >= 0", name="ck_price_list_item_price"),)


class Promotion(TimestampMixin, Model):
    """A discount or buy-N-get-M, scoped by product or category, level and region (NULL = any)."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100)
    kind = enum_field(PromotionKind, "discount | buy_n_get_m")
    product: fields.ForeignKeyNullableRelation[Product] = fields.ForeignKeyField(
        "qudao.Product", related_name="promotions", null=True, on_delete=fields.RESTRICT
    )
    category = fields.CharField(max_length=64, null=True)
    level = fields.IntField(null=True)
    region = fields.CharField(max_length=64, null=True)
    discount_rate = fields.DecimalField(
        max_digits=5,
        decimal_places=4,
        null=True,
        description="price multiplier for kind=discount: 0.9500 = 5% off",
    )
    buy_n = fields.IntField(null=True, description="kind=buy_n_get_m: units to buy")
    get_m = fields.IntField(null=True, description="kind=buy_n_get_m: free units per buy_n")
    valid_from = fields.DateField()
    valid_to = fields.DateField(null=True)
    active = fields.BooleanField(db_default=True)

    class Meta:
        table = "promotion"
        indexes = (("product_id",), ("category",))
        constraints = (
            CheckConstraint(check=VALID_DATES, name="ck_promotion_dates"),
            CheckConstraint(
                check="kind <> 'discount' OR (discount_rate IS NOT NULL"
                " AND CAST(discount_rate AS NUMERIC) > 0 AND CAST(discount_rate AS NUMERIC) <= 1)",
                name="ck_promotion_discount",
            ),
            CheckConstraint(
                check="kind <> 'buy_n_get_m' OR (buy_n > 0 AND get_m > 0)",
                name="ck_promotion_buy_n_get_m",
            ),
        )
