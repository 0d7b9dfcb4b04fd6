"""ORM models. Schemas for the API are separate from these."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class PlatformRun(Base):
    """One start of the platform: when, on which chain, with which deployment."""

    __tablename__ = "platform_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    chain_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    rpc_url: Mapped[str] = mapped_column(String(512), nullable=False)
    deployment_block: Mapped[int] = mapped_column(BigInteger, nullable=False)
    electra_version: Mapped[str] = mapped_column(String(32), nullable=False)
